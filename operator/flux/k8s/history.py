"""A run's history and task records as they are kept in WorkflowRun status."""

from __future__ import annotations

from typing import Any

from flux.events import ExecutionEvent
from flux.k8s.states import FINISHED_TASK_STATES


def event_to_status(event: ExecutionEvent) -> dict[str, Any]:
    """An event as kept in status: the history form, with Kubernetes' camelCase key."""
    data = event.to_dict()
    data["sourceId"] = data.pop("source_id")
    return data


def event_from_status(data: dict[str, Any]) -> ExecutionEvent:
    return ExecutionEvent.from_dict({**data, "source_id": data["sourceId"]})


def finished_records(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Task records whose outcome the operator has settled."""
    return [r for r in status.get("tasks") or [] if r.get("state") in FINISHED_TASK_STATES]
