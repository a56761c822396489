"""Pure decisions of the reconcile loop: observed state in, wanted state out.

Nothing here reads a clock, imports or runs user code, or talks to the API:
the time is passed in, and inline workflow source is only compiled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from flux.k8s import run_conditions
from flux.k8s.models import (
    ENTRYPOINT_PATTERN,
    IDENTIFIER_PATTERN,
    Condition,
    WorkflowSpec,
    plain,
    to_json,
)

# A run's Succeeded condition is decided without the models (driver pods use it).
from flux.k8s.run_conditions import (
    ConditionUpdate,
    cancel_requested,
    succeeded_condition,
    succeeded_update,
)
from flux.k8s.states import ConditionStatus, ConditionType, Reason

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
    """``conditions`` with ``new`` in place of the one of its type, by the rule
    of :func:`flux.k8s.run_conditions.set_condition` (the transition time moves
    only when the status does)."""
    updated = run_conditions.set_condition([to_json(c) for c in conditions], to_json(new), now)
    return [Condition.model_validate(c) for c in updated]


def condition_changed(conditions: Sequence[Condition], new: Condition) -> bool:
    """True when storing ``new`` would change what ``conditions`` say (times aside)."""
    return run_conditions.condition_changed([to_json(c) for c in conditions], to_json(new))


__all__ = [
    "ConditionUpdate",
    "cancel_requested",
    "condition_changed",
    "set_condition",
    "source_problem",
    "succeeded_condition",
    "succeeded_update",
    "workflow_ready",
]
