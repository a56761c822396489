"""What a workflow sees of its run, and what callers get back from it."""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

from flux import codec
from flux.events import EventType, ExecutionEvent, ExecutionState

T = TypeVar("T")


class WorkflowExecutionContext(Generic[T]):
    def __init__(
        self,
        workflow_name: str,
        execution_id: str,
        input: T,
        events: list[ExecutionEvent] | None = None,
        state: ExecutionState = ExecutionState.CREATED,
        output: Any = None,
        secrets: dict[str, str] | None = None,
    ):
        self.workflow_name = workflow_name
        self.execution_id = execution_id
        self.input = input
        self.events: list[ExecutionEvent] = events if events is not None else []
        self.state = state
        self.output = output
        # Values of the workflow's own secret_requests; never serialised.
        self.secrets: dict[str, str] = secrets or {}

    @property
    def has_started(self) -> bool:
        return any(e.type == EventType.WORKFLOW_STARTED for e in self.events)

    @property
    def has_finished(self) -> bool:
        return self.state.is_final

    @property
    def has_succeeded(self) -> bool:
        return self.state == ExecutionState.COMPLETED

    @property
    def has_failed(self) -> bool:
        return self.state == ExecutionState.FAILED

    @property
    def is_paused(self) -> bool:
        return self.state == ExecutionState.PAUSED

    @property
    def is_cancelled(self) -> bool:
        return self.state == ExecutionState.CANCELLED

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_name": self.workflow_name,
            "execution_id": self.execution_id,
            "state": self.state.value,
            "input": codec.encode(self.input),
            "output": codec.encode(self.output),
            "events": [e.to_dict() for e in self.events],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def __repr__(self) -> str:
        return (
            f"WorkflowExecutionContext(workflow={self.workflow_name!r}, "
            f"execution_id={self.execution_id!r}, state={self.state.value})"
        )


ExecutionContext = WorkflowExecutionContext
