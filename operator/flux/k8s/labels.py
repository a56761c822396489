"""The labels and annotations Flux puts on the objects it creates, named once.

The operator finds a run's pods and ConfigMaps by these labels; a task pod's
annotations say which call, step and attempt it runs (and, for a batch pod,
how many calls), so that a person reading ``kubectl describe`` sees it too.
"""

from __future__ import annotations

LABEL_RUN = "flux.dev/run"
LABEL_ROLE = "flux.dev/role"  # a PodRole, or archive-<kind> on a ConfigMap
LABEL_CALL = "flux.dev/call"
LABEL_WORKFLOW = "flux.dev/workflow"
LABEL_SCHEDULE = "flux.dev/schedule"  # on a run a Workflow's schedule started
ANNOTATION_CALL_ID = "flux.dev/call-id"
ANNOTATION_STEP = "flux.dev/step"
ANNOTATION_ATTEMPT = "flux.dev/attempt"
ANNOTATION_BATCH_SIZE = "flux.dev/batch-size"
ANNOTATION_SCHEDULED_TIME = "flux.dev/scheduled-time"  # the time a scheduled run is for
LABEL_REVISION = "flux.dev/revision"  # on a Workflow's inline source ConfigMaps
# A code revision (flux.k8s.revisions), a label value: this many hex digits of a
# sha256, 48 bits, plenty for one Workflow's revisions (a collision needs two of
# them to share them). Here, not with the CRD models, so that a driver pod
# hashing a revision need not import pydantic.
REVISION_LENGTH = 12
REVISION_PATTERN = f"^[0-9a-f]{{{REVISION_LENGTH}}}$"
LABEL_PART_OF = "app.kubernetes.io/part-of"
