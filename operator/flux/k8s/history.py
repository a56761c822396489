"""A run's history and task records as they are kept in WorkflowRun status."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flux.events import EventType, ExecutionEvent, ExecutionState

PHASES = {
    ExecutionState.CREATED: "Pending",
    ExecutionState.RUNNING: "Running",
    ExecutionState.PAUSED: "Paused",
    ExecutionState.COMPLETED: "Succeeded",
    ExecutionState.FAILED: "Failed",
    ExecutionState.CANCELLED: "Cancelled",
}
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Cancelled"})
FINISHED_TASK_STATES = frozenset({"Completed", "Failed"})


def event_to_status(event: ExecutionEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type.value,
        "sourceId": event.source_id,
        "name": event.name,
        "time": event.time.isoformat(),
        "value": event.value,
    }


def event_from_status(data: dict[str, Any]) -> ExecutionEvent:
    return ExecutionEvent(
        type=EventType(data["type"]),
        source_id=data["sourceId"],
        name=data["name"],
        time=dt.datetime.fromisoformat(data["time"]),
        value=data.get("value"),
        id=int(data.get("id", 0)),
    )


def history_from_status(status: dict[str, Any]) -> list[ExecutionEvent]:
    return [event_from_status(e) for e in status.get("history") or []]


def finished_records(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Task records whose outcome the operator has settled."""
    return [r for r in status.get("tasks") or [] if r.get("state") in FINISHED_TASK_STATES]
