"""Pure decisions of the reconcile loop: observed state in, wanted state out.

Nothing here reads a clock, imports or runs user code, or talks to the API:
the time is passed in, and inline workflow source is only compiled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from flux.events import TASK_OUTCOME_EVENTS, WORKFLOW_FINAL_EVENTS, EventType, ExecutionState
from flux.k8s.calls import Call
from flux.k8s.history import PHASES
from flux.k8s.models import (
    ENTRYPOINT_PATTERN,
    IDENTIFIER_PATTERN,
    Condition,
    ConditionStatus,
    HistoryEvent,
    Phase,
    WorkflowSpec,
    plain,
)

READY = "Ready"
SOURCE_FILENAME = "<workflow source>"
_PATTERN_FORMS = {
    ENTRYPOINT_PATTERN: "of the form module:function",
    IDENTIFIER_PATTERN: "a Python identifier",
}
_FINAL_STATES = {
    EventType.WORKFLOW_COMPLETED: ExecutionState.COMPLETED,
    EventType.WORKFLOW_FAILED: ExecutionState.FAILED,
    EventType.WORKFLOW_CANCELLED: ExecutionState.CANCELLED,
}


def workflow_ready(spec: Mapping[str, Any], generation: int | None = None) -> Condition:
    """The Workflow's Ready condition for ``spec`` (without its transition time).

    The spec is checked as the API server would (a spec applied before the CRD
    had its rules, or edited around them, is caught here too), then inline
    source is compiled so that a syntax error names its line.
    """
    try:
        parsed = WorkflowSpec.model_validate(plain(spec))
    except ValidationError as exc:
        return _ready(False, "InvalidSpec", _describe(exc), generation)
    if parsed.source is not None:
        problem = source_problem(parsed.source)
        if problem is not None:
            return _ready(False, "SourceSyntaxError", problem, generation)
    return _ready(True, "Valid", "the workflow can run", generation)


def source_problem(source: str) -> str | None:
    """Why inline source cannot be loaded, or None. Compiled only: never executed."""
    try:
        # dont_inherit: this module's __future__ imports must not change the result.
        compile(source, SOURCE_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"spec.source line {exc.lineno}" if exc.lineno else "spec.source"
        return f"{where}: syntax error: {exc.msg}"
    # NUL on older Pythons; nesting too deep for the parser, which some versions
    # report as MemoryError.
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"spec.source cannot be compiled: {type(exc).__name__} {exc}".rstrip()
    return None


def _ready(ok: bool, reason: str, message: str, generation: int | None) -> Condition:
    return Condition(
        type=READY,
        status=ConditionStatus.TRUE if ok else ConditionStatus.FALSE,
        reason=reason,
        message=message,
        observed_generation=generation,
    )


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(["spec", *(str(part) for part in error["loc"])])
        form = _PATTERN_FORMS.get((error.get("ctx") or {}).get("pattern", ""))
        if form is not None:
            problems.append(f"{where} {error['input']!r} is not {form}")
        else:
            problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def set_condition(
    conditions: Sequence[Condition], new: Condition, now: dt.datetime
) -> list[Condition]:
    """``conditions`` with ``new`` in place of the one of its type.

    The transition time moves only when the status does, so that it says how
    long the object has been (not) ready, not when it was last looked at.
    """
    old = next((c for c in conditions if c.type == new.type), None)
    since = now
    if old is not None and old.status == new.status and old.last_transition_time is not None:
        since = old.last_transition_time
    stamped = new.model_copy(update={"last_transition_time": since})
    if old is None:
        return [*conditions, stamped]
    return [stamped if c.type == new.type else c for c in conditions]


def condition_changed(conditions: Sequence[Condition], new: Condition) -> bool:
    """True when storing ``new`` would change what ``conditions`` say (times aside)."""
    old = next((c for c in conditions if c.type == new.type), None)
    keys = ("status", "reason", "message", "observed_generation")
    return old is None or any(getattr(old, k) != getattr(new, k) for k in keys)


def execution_state(history: Sequence[HistoryEvent]) -> ExecutionState:
    """The run's state as its history records it (what replaying it would find)."""
    if not history:
        return ExecutionState.CREATED
    for event in reversed(history):
        if event.type in WORKFLOW_FINAL_EVENTS:
            return _FINAL_STATES[event.type]
    open_pauses: set[str] = set()
    for event in history:
        if event.type == EventType.TASK_PAUSED:
            open_pauses.add(event.source_id)
        elif event.type == EventType.TASK_RESUMED:
            open_pauses.discard(event.source_id)
    return ExecutionState.PAUSED if open_pauses else ExecutionState.RUNNING


def phase_for(history: Sequence[HistoryEvent]) -> Phase:
    return Phase(PHASES[execution_state(history)])


def outstanding_calls(history: Sequence[HistoryEvent]) -> list[Call]:
    """Task calls started and not yet settled, in the order they started.

    Sleeps and built-ins are not among them: they need no pod. A finished run
    has none, even if its last driver stopped before it recorded the
    cancellation of calls the workflow left behind.
    """
    if execution_state(history).is_final:
        return []
    settled = {e.source_id for e in history if e.type in TASK_OUTCOME_EVENTS}
    return [
        Call.from_event(event.model_dump(mode="json", by_alias=True))
        for event in history
        if event.type == EventType.TASK_STARTED
        and isinstance(event.value, dict)
        and "task" in event.value
        and event.source_id not in settled
    ]
