"""Names Flux gives its objects' labels and annotations, and the API group of its
resources (see :mod:`flux.k8s.kube.resources` for the resources themselves)."""

from __future__ import annotations

from flux.k8s.kube.resources import GROUP, VERSION

LABEL_RUN = "flux.dev/run"
LABEL_ROLE = "flux.dev/role"
LABEL_CALL = "flux.dev/call"
LABEL_WORKFLOW = "flux.dev/workflow"
ANNOTATION_CALL_ID = "flux.dev/call-id"
ANNOTATION_STEP = "flux.dev/step"
ANNOTATION_ATTEMPT = "flux.dev/attempt"
ANNOTATION_BATCH_SIZE = "flux.dev/batch-size"

__all__ = [
    "ANNOTATION_ATTEMPT",
    "ANNOTATION_BATCH_SIZE",
    "ANNOTATION_CALL_ID",
    "ANNOTATION_STEP",
    "GROUP",
    "LABEL_CALL",
    "LABEL_ROLE",
    "LABEL_RUN",
    "LABEL_WORKFLOW",
    "VERSION",
]
