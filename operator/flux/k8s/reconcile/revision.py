"""The run's code revision: recorded at its start, checked after (see flux.k8s.revisions)."""

from __future__ import annotations

from flux.k8s import revisions
from flux.k8s.bodies import RunBody, WorkflowBody, as_pods
from flux.k8s.config import OperatorConfig
from flux.k8s.pods import current_revision
from flux.k8s.reconcile.failures import Unrunnable
from flux.k8s.reconcile.plan import Observed, Plan
from flux.k8s.states import Reason


def pin_revision(
    plan: Plan, run: RunBody, workflow: WorkflowBody, config: OperatorConfig, observed: Observed
) -> Unrunnable | None:
    """Record the Workflow's current revision on a run that has none; check the one a
    run recorded is a revision of its Workflow (status is writable by whoever may
    patch the run: a hostile record must not run other code); record the image's
    digest once a pod reports it. Why the run cannot go on, or None."""
    status = run.get("status") or {}
    current = current_revision(workflow, config)
    recorded = revisions.run_revision(status)
    if recorded is None:
        if any(status.get(key) for key in ("revision", "entrypoint", "image")):
            return _invalid(run, "it is incomplete")
        plan.status.update(revisions.pinned_status(current))
        return None
    if not revisions.same(recorded, current):
        name = workflow["metadata"]["name"]
        found = observed.revision_configmap
        held = revisions.from_configmap(found, name) if found is not None else None
        if held is None or not revisions.same(recorded, held):
            return _invalid(run, f"no revision {recorded.name} of Workflow {name!r} holds it")
    if not status.get("imageDigest"):
        digest = revisions.image_digest(as_pods(observed.pods), recorded.image)
        if digest is not None:
            plan.status["imageDigest"] = digest
    return None


def _invalid(run: RunBody, why: str) -> Unrunnable:
    status = run.get("status") or {}
    return Unrunnable(
        Reason.REVISION_INVALID,
        f"status.revision {status.get('revision')!r} (entrypoint "
        f"{status.get('entrypoint')!r}, image {status.get('image')!r}) cannot be run: {why}; "
        "the operator records it when the run starts and it is never to be changed",
    )
