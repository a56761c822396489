"""A run that cannot start, and the Succeeded condition that says how a run stands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flux.engine.failures import FailureKind
from flux.k8s.bodies import ConditionBody, RunBody, WorkflowBody
from flux.k8s.decisions import succeeded_update
from flux.k8s.reconcile.plan import Plan
from flux.k8s.states import CONFIGURATION_ERROR, ConditionStatus, ConditionType, Phase, Reason


@dataclass(frozen=True)
class Unrunnable:
    """Why the run cannot go on: its Workflow is missing or not ready, its driver
    keeps failing, its history is lost."""

    reason: Reason
    message: str
    kind: str = CONFIGURATION_ERROR


def workflow_checked(workflow: WorkflowBody) -> bool:
    """Whether the operator has checked the Workflow's current spec (its Ready condition)."""
    ready = _ready_condition(workflow)
    generation = workflow["metadata"].get("generation")
    return ready is not None and ready.get("observedGeneration") == generation


def workflow_not_found(run: RunBody) -> Unrunnable:
    ref = ((run.get("spec") or {}).get("workflowRef") or {}).get("name")
    namespace = run["metadata"]["namespace"]
    return Unrunnable(
        Reason.WORKFLOW_NOT_FOUND, f"Workflow {ref!r} not found in namespace {namespace!r}"
    )


def workflow_not_ready(run: RunBody, workflow: WorkflowBody) -> Unrunnable | None:
    """Why the run cannot start on its checked Workflow (see :func:`workflow_checked`)."""
    ready = _ready_condition(workflow) or {}
    if ready.get("status") == ConditionStatus.TRUE:
        return None
    ref = ((run.get("spec") or {}).get("workflowRef") or {}).get("name")
    return Unrunnable(
        Reason.WORKFLOW_INVALID, f"Workflow {ref!r} is not ready: {ready.get('message', '')}"
    )


def history_lost(detail: str) -> Unrunnable:
    """An archived chunk of the run's history is gone or unreadable (``detail``)."""
    return Unrunnable(
        Reason.HISTORY_LOST,
        f"the run's history cannot be read: {detail}",
        FailureKind.INFRASTRUCTURE,
    )


def _ready_condition(workflow: WorkflowBody) -> ConditionBody | None:
    conditions = (workflow.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == ConditionType.READY), None)


def fail(
    plan: Plan,
    status: Mapping[str, Any],
    problem: Unrunnable,
    now: dt.datetime,
    generation: int | None,
) -> None:
    """End the run as Failed for a reason the operator found itself."""
    plan.status["phase"] = Phase.FAILED
    plan.status["finishTime"] = now.isoformat()
    plan.status["error"] = {
        "type": problem.reason,
        "message": problem.message,
        "kind": problem.kind,
    }
    set_conditions(plan, {**status, **plan.status}, now, generation)


def set_conditions(
    plan: Plan, status: Mapping[str, Any], now: dt.datetime, generation: int | None
) -> None:
    """Keep the Succeeded condition in step with the phase."""
    update = succeeded_update(status, now, generation)
    if update is not None:
        plan.status["conditions"] = update.conditions
        plan.events.extend(update.events)
