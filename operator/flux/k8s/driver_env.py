"""The environment a driver pod is started with: written by the operator's pod
builder (:mod:`flux.k8s.pods`), read by the driver (:mod:`flux.runtime.driver_main`)."""

from __future__ import annotations

# The workflow to replay, as "module:attribute".
WORKFLOW_ENV = "FLUX_WORKFLOW"
# The one run a per-run driver serves.
RUN_ENV = "FLUX_RUN"
# Set instead of FLUX_RUN for a shared driver: the Workflow whose runs it serves.
WORKFLOW_NAME_ENV = "FLUX_WORKFLOW_NAME"
NAMESPACE_ENV = "FLUX_NAMESPACE"
LINGER_ENV = "FLUX_DRIVER_LINGER_SECONDS"
