"""A run's Succeeded condition, and the rule for replacing any condition, on
conditions as the API stores them (plain JSON, camelCase keys).

Pure, and without pydantic: the driver pods write a run's condition with its
phase, and importing the CRD models (pydantic and its validators) cost a
driver pod about a tenth of a second of CPU before its first write.
:mod:`flux.k8s.decisions` applies the same rule to the models for Workflows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux.k8s.states import (
    OPERATOR_REASONS,
    QUIET_REASONS,
    ConditionStatus,
    ConditionType,
    EventKind,
    Phase,
    Reason,
)
from flux.k8s.timestamps import format_time

Condition = dict[str, Any]
# Failure types recorded by the workflow that mean the user's input was wrong.
INPUT_ERRORS = {
    "WorkflowInputError": Reason.INVALID_INPUT,
    "GraphValidationError": Reason.INVALID_GRAPH,
}
# What a new condition is compared on: its transition time aside.
_COMPARED = (("status", None), ("reason", ""), ("message", ""), ("observedGeneration", None))


def cancel_requested(run: Mapping[str, Any]) -> bool:
    """Whether the user asked to cancel the run (``spec.cancel``; it cannot be unset)."""
    return bool((run.get("spec") or {}).get("cancel"))


def condition(
    kind: str, status: str, reason: str, message: str, generation: int | None = None
) -> Condition:
    """A condition without its transition time (``set_condition`` stamps it)."""
    made: Condition = {"type": kind, "status": status, "reason": reason, "message": message}
    if generation is not None:
        made["observedGeneration"] = generation
    return made


def set_condition(
    conditions: Sequence[Condition], new: Condition, now: dt.datetime
) -> list[Condition]:
    """``conditions`` with ``new`` in place of the one of its type.

    The transition time moves only when the status does, so that it says how
    long the object has been (not) ready, not when it was last looked at.
    """
    old = _of_type(conditions, new["type"])
    since = format_time(now)
    if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
        since = old["lastTransitionTime"]
    stamped = {**new, "lastTransitionTime": since}
    if old is None:
        return [*conditions, stamped]
    return [stamped if c is old else c for c in conditions]


def condition_changed(conditions: Sequence[Condition], new: Condition) -> bool:
    """True when storing ``new`` would change what ``conditions`` say (times aside)."""
    old = _of_type(conditions, new["type"])
    return old is None or any(old.get(k, d) != new.get(k, d) for k, d in _COMPARED)


def _of_type(conditions: Sequence[Condition], kind: str) -> Condition | None:
    return next((c for c in conditions if c.get("type") == kind), None)


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
    # Entries that are not objects cannot be conditions (a hand-edited status): dropped.
    stored = [dict(c) for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    if not condition_changed(stored, wanted):
        return None
    conditions = set_condition(stored, wanted, now)
    old = _of_type(stored, wanted["type"])
    # A new generation alone (a spec edit of a finished run: its cancel, say) is
    # recorded in the condition but is no news: no Event repeats the outcome.
    said = old is not None and all(
        old.get(k, "") == wanted[k] for k in ("status", "reason", "message")
    )
    if wanted["reason"] in QUIET_REASONS or said:
        return ConditionUpdate(conditions)
    kind = EventKind.WARNING if wanted["status"] == ConditionStatus.FALSE else EventKind.NORMAL
    return ConditionUpdate(conditions, [(kind, wanted["reason"], wanted["message"])])


def succeeded_condition(status: Mapping[str, Any], generation: int | None = None) -> Condition:
    """The Succeeded condition ``status`` calls for (without its transition time)."""
    phase = str(status.get("phase") or Phase.PENDING)
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
    # Plain strings, as the API gives them back.
    return condition(str(ConditionType.SUCCEEDED), str(state), str(reason), message, generation)
