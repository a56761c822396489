"""History events. Event type names are compatible with the Flux engine."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


def utc_now() -> dt.datetime:
    """Now, timezone-aware in UTC: the clock of every time a run records."""
    return dt.datetime.now(dt.UTC)


class EventType(StrEnum):
    WORKFLOW_STARTED = "WORKFLOW_STARTED"
    WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
    WORKFLOW_FAILED = "WORKFLOW_FAILED"
    WORKFLOW_PAUSED = "WORKFLOW_PAUSED"
    WORKFLOW_RESUMED = "WORKFLOW_RESUMED"
    WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"
    TASK_STARTED = "TASK_STARTED"
    TASK_COMPLETED = "TASK_COMPLETED"
    TASK_FAILED = "TASK_FAILED"
    TASK_RETRY_STARTED = "TASK_RETRY_STARTED"
    TASK_RETRY_COMPLETED = "TASK_RETRY_COMPLETED"
    TASK_RETRY_FAILED = "TASK_RETRY_FAILED"
    TASK_FALLBACK_STARTED = "TASK_FALLBACK_STARTED"
    TASK_FALLBACK_COMPLETED = "TASK_FALLBACK_COMPLETED"
    TASK_FALLBACK_FAILED = "TASK_FALLBACK_FAILED"
    TASK_ROLLBACK_STARTED = "TASK_ROLLBACK_STARTED"
    TASK_ROLLBACK_COMPLETED = "TASK_ROLLBACK_COMPLETED"
    TASK_ROLLBACK_FAILED = "TASK_ROLLBACK_FAILED"
    TASK_PAUSED = "TASK_PAUSED"
    TASK_RESUMED = "TASK_RESUMED"
    # Not in the Flux engine: a call the workflow itself abandoned (for example
    # the other branches of a failed ``parallel``).
    TASK_CANCELLED = "TASK_CANCELLED"


class ExecutionState(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED)


@dataclass(slots=True)
class ExecutionEvent:
    """One entry of a run's history.

    ``source_id`` is the call id for task events and the execution id for
    workflow events. ``value`` is already codec-encoded (JSON-compatible), so a
    history stays readable even where the types in it cannot be imported.
    """

    type: EventType
    source_id: str
    name: str
    time: dt.datetime
    value: Any = None
    id: int = field(default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type.value,
            "source_id": self.source_id,
            "name": self.name,
            "time": self.time.isoformat(),
            "value": self.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionEvent:
        return cls(
            type=EventType(data["type"]),
            source_id=data["source_id"],
            name=data["name"],
            time=dt.datetime.fromisoformat(data["time"]),
            value=data.get("value"),
            id=int(data.get("id", 0)),
        )


WORKFLOW_FINAL_EVENTS = frozenset(
    {EventType.WORKFLOW_COMPLETED, EventType.WORKFLOW_FAILED, EventType.WORKFLOW_CANCELLED}
)
# Events that end one task call, as the workflow sees it.
TASK_OUTCOME_EVENTS = frozenset(
    {
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.TASK_CANCELLED,
        EventType.TASK_RESUMED,
    }
)
# Events that record a step the workflow code itself took.
WORKFLOW_STEP_EVENTS = frozenset({EventType.TASK_STARTED, EventType.TASK_PAUSED})
