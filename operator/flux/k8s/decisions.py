"""Pure decisions of the reconcile loop: observed state in, wanted state out.

Nothing here reads a clock, imports or runs user code, or talks to the API:
the time is passed in, and inline workflow source is only compiled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from flux.k8s.models import (
    ENTRYPOINT_PATTERN,
    IDENTIFIER_PATTERN,
    Condition,
    WorkflowSpec,
    plain,
    to_json,
)
from flux.k8s.states import (
    OPERATOR_REASONS,
    QUIET_REASONS,
    ConditionStatus,
    ConditionType,
    EventKind,
    Phase,
    Reason,
)

# Failure types recorded by the workflow that mean the user's input was wrong.
INPUT_ERRORS = {
    "WorkflowInputError": Reason.INVALID_INPUT,
    "GraphValidationError": Reason.INVALID_GRAPH,
}
SOURCE_FILENAME = "<workflow source>"
_PATTERN_FORMS = {
    ENTRYPOINT_PATTERN: "of the form module:function",
    IDENTIFIER_PATTERN: "a Python identifier",
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
        return _ready(False, Reason.INVALID_SPEC, _describe(exc), generation)
    if parsed.source is not None:
        problem = source_problem(parsed.source)
        if problem is not None:
            return _ready(False, Reason.SOURCE_SYNTAX_ERROR, problem, generation)
    return _ready(True, Reason.VALID, "the workflow can run", generation)


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


def _ready(ok: bool, reason: Reason, message: str, generation: int | None) -> Condition:
    return Condition(
        type=ConditionType.READY,
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


def cancel_requested(run: Mapping[str, Any]) -> bool:
    """Whether the user asked to cancel the run (``spec.cancel``; it cannot be unset)."""
    return bool((run.get("spec") or {}).get("cancel"))


@dataclass(frozen=True)
class ConditionUpdate:
    """A run's conditions after a change of its Succeeded condition, and the Events saying so."""

    conditions: list[dict[str, Any]]
    events: list[tuple[str, str, str]] = field(default_factory=list)


def succeeded_update(
    status: Mapping[str, Any], now: dt.datetime, generation: int | None = None
) -> ConditionUpdate | None:
    """The run's conditions if its Succeeded condition no longer matches ``status``.

    Whoever writes a phase writes this with it (the driver for the workflow's
    own phases, the operator for the failures it finds), so the condition never
    needs a write of its own, and the writer of a transition announces it.
    """
    wanted = succeeded_condition(status, generation)
    stored = [Condition.model_validate(c) for c in status.get("conditions") or []]
    if not condition_changed(stored, wanted):
        return None
    conditions = [to_json(c) for c in set_condition(stored, wanted, now)]
    old = next((c for c in stored if c.type == wanted.type), None)
    # A new generation alone (a spec edit of a finished run: its cancel, say) is
    # recorded in the condition but is no news: no Event repeats the outcome.
    said = old is not None and (old.status, old.reason, old.message) == (
        wanted.status,
        wanted.reason,
        wanted.message,
    )
    if wanted.reason in QUIET_REASONS or said:
        return ConditionUpdate(conditions)
    kind = EventKind.WARNING if wanted.status == ConditionStatus.FALSE else EventKind.NORMAL
    return ConditionUpdate(conditions, [(kind, wanted.reason, wanted.message)])


def succeeded_condition(status: Mapping[str, Any], generation: int | None = None) -> Condition:
    phase = status.get("phase") or Phase.PENDING
    error = status.get("error") or {}
    reason: str
    if phase == Phase.SUCCEEDED:
        state, reason, message = ConditionStatus.TRUE, Reason.SUCCEEDED, "the workflow completed"
    elif phase == Phase.FAILED:
        error_type = str(error.get("type", "Failed"))
        reason = INPUT_ERRORS.get(
            error_type, error_type if error_type in OPERATOR_REASONS else Reason.WORKFLOW_FAILED
        )
        state, message = ConditionStatus.FALSE, str(error.get("message", "the workflow failed"))
    elif phase == Phase.CANCELLED:
        state, reason, message = ConditionStatus.FALSE, Reason.CANCELLED, "the run was cancelled"
    elif phase == Phase.PAUSED:
        pause = (status.get("pause") or {}).get("name", "")
        state, reason = ConditionStatus.UNKNOWN, Reason.PAUSED
        message = f"waiting at pause {pause!r}; resume by patching status.resume"
    elif (status.get("driver") or {}).get("queued"):
        state, reason = ConditionStatus.UNKNOWN, Reason.DRIVER_QUEUED
        message = (
            f"the run is {phase.lower()} and waits for a driver pod: the operator runs "
            "at most FLUX_MAX_DRIVER_PODS per-run driver pods at once (chart value "
            "operator.maxDriverPods); it starts when one finishes"
        )
    else:
        # Pending, Running: the reason is the phase.
        state, reason, message = ConditionStatus.UNKNOWN, phase, f"the run is {phase.lower()}"
    return Condition(
        type=ConditionType.SUCCEEDED,
        status=state,
        reason=reason,
        message=message,
        observed_generation=generation,
    )
