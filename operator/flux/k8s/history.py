"""A run's history and task records as they are kept in WorkflowRun status."""

from __future__ import annotations

from typing import Any

from flux.events import ExecutionEvent, ExecutionState

PHASES = {
    ExecutionState.CREATED: "Pending",
    ExecutionState.RUNNING: "Running",
    ExecutionState.PAUSED: "Paused",
    ExecutionState.COMPLETED: "Succeeded",
    ExecutionState.FAILED: "Failed",
    ExecutionState.CANCELLED: "Cancelled",
}
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled"})
FINISHED_TASK_STATES = frozenset({"Completed", "Failed", "Cancelled"})


def event_to_status(event: ExecutionEvent) -> dict[str, Any]:
    """An event as kept in status: the history form, with Kubernetes' camelCase key."""
    data = event.to_dict()
    data["sourceId"] = data.pop("source_id")
    return data


def event_from_status(data: dict[str, Any]) -> ExecutionEvent:
    return ExecutionEvent.from_dict({**data, "source_id": data["sourceId"]})


def history_from_status(status: dict[str, Any]) -> list[ExecutionEvent]:
    return [event_from_status(e) for e in status.get("history") or []]


def finished_records(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Task records whose outcome the operator has settled."""
    return [r for r in status.get("tasks") or [] if r.get("state") in FINISHED_TASK_STATES]
