"""A Workflow's schedules: when each one is due and what the operator does then (pure).

The rules are those of Kubernetes CronJobs (the ``cronjob`` controller, v2):

- Only the most recent due time since ``lastScheduleTime`` (or since the
  schedule appeared) starts a run; earlier missed times are dropped.
- With ``startingDeadlineSeconds``, a time more than that long past is missed
  for good (``missed_beyond_deadline``); without one, a missed time is started
  however late the operator comes back.
- More than :data:`TOO_MANY_MISSED` missed times is reported (a warning), and
  the most recent one still starts, as the v2 controller does (the v1
  controller refused to start any).
- ``Forbid`` skips a due time while an earlier run of the schedule is
  unfinished; the time stays due (``lastScheduleTime`` does not move), so it
  starts when that run ends, if still within the deadline. ``Replace`` cancels
  the unfinished runs and starts the new one; ``Allow`` just starts it.
- ``suspend`` starts nothing; missed times are judged when it is lifted.

Cron expressions are evaluated by cronsim (5 fields, no seconds, no years):
a dependency-free, typed evaluator that walks time-zone-aware times the way
cronie does across DST: a time in the skipped hour runs right after the jump,
a fixed time in the repeated hour runs once, wildcard hours run in both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cronsim import CronSim, CronSimError

from flux.k8s.models import Condition
from flux.k8s.states import ConcurrencyPolicy, ConditionStatus, ConditionType, Reason

# The v2 CronJob controller's limit: beyond it, a warning.
TOO_MANY_MISSED = 100
# The shorthands Kubernetes CronJobs accept, as the 5 fields they stand for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DEFAULT_TIME_ZONE = "UTC"
# A run's name is also a label value on its pods (at most 63 characters).
MAX_RUN_NAME = 63
_HASH_LENGTH = 8


class ScheduleError(ValueError):
    """A cron expression or time zone the operator cannot use; the message says why."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression in its time zone."""

    expression: str
    zone: zoneinfo.ZoneInfo

    def after(self, when: dt.datetime) -> dt.datetime:
        """The first time strictly after ``when``, in UTC."""
        start = when.astimezone(self.zone).replace(microsecond=0)
        return next(CronSim(self.expression, start)).astimezone(dt.UTC)

    def at_or_before(self, when: dt.datetime) -> dt.datetime:
        """The last time at or before ``when``, in UTC."""
        # cronsim's reverse walk starts strictly before its start, at whole seconds.
        start = when.astimezone(self.zone).replace(microsecond=0) + dt.timedelta(seconds=1)
        return next(CronSim(self.expression, start, reverse=True)).astimezone(dt.UTC)


def parse(cron: str, time_zone: str | None = None) -> Cron:
    """The cron expression (5 fields or a macro such as ``@daily``) in ``time_zone``
    (IANA, default UTC). Raises :class:`ScheduleError`."""
    name = time_zone or DEFAULT_TIME_ZONE
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc
    expression = MACROS.get(cron.strip().lower(), cron.strip())
    if expression.startswith("@"):
        raise ScheduleError(f"cron {cron!r}: unknown macro (one of {', '.join(MACROS)})")
    try:
        # Parsing checks every field; the first time checks the day can ever come (30 2 31 2 *).
        found = Cron(expression, zone)
        found.after(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except (CronSimError, StopIteration) as exc:
        raise ScheduleError(f"cron {cron!r}: {exc or 'never due'}") from exc
    return found


def run_name(workflow: str, schedule: str, time: dt.datetime) -> str:
    """The run a schedule starts for ``time``: the same name on every pass and after
    a restart, so a run is never started twice. Too long a name is cut and hashed."""
    minutes = str(int(time.timestamp()) // 60)
    prefix = f"{workflow}-{schedule}"
    if len(prefix) + 1 + len(minutes) <= MAX_RUN_NAME:
        return f"{prefix}-{minutes}"
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:_HASH_LENGTH]
    keep = MAX_RUN_NAME - len(minutes) - _HASH_LENGTH - 2
    return f"{prefix[:keep].rstrip('-.')}-{digest}-{minutes}"


@dataclass(frozen=True)
class Due:
    """The time a schedule should start a run for, and what was missed on the way."""

    time: dt.datetime
    # Due times since the last start, within the deadline (``time`` among them);
    # counted up to TOO_MANY_MISSED + 1.
    missed: int


def due(
    cron: Cron,
    *,
    since: dt.datetime,
    last: dt.datetime | None,
    deadline_seconds: int | None,
    now: dt.datetime,
) -> Due | None:
    """The most recent time due after ``last`` (else after ``since``, when the
    schedule appeared), not more than the deadline ago; None if there is none."""
    earliest = last or since
    if deadline_seconds is not None:
        earliest = max(earliest, now - dt.timedelta(seconds=deadline_seconds))
    time, missed = cron.after(earliest), 0
    while time <= now and missed <= TOO_MANY_MISSED:
        missed += 1
        latest, time = time, cron.after(time)
    if missed == 0:
        return None
    if missed > TOO_MANY_MISSED:
        latest = cron.at_or_before(now)
    return Due(latest, missed)


def missed_beyond_deadline(
    cron: Cron,
    *,
    since: dt.datetime,
    last: dt.datetime | None,
    deadline_seconds: int | None,
    now: dt.datetime,
) -> bool:
    """Whether a due time passed more than the starting deadline ago, never to start."""
    if deadline_seconds is None:
        return False
    return cron.after(last or since) < now - dt.timedelta(seconds=deadline_seconds)


class Skip(StrEnum):
    """Why a due time started no run."""

    SUSPENDED = "Suspended"
    FORBIDDEN = "Forbidden"  # Forbid, and an earlier run is unfinished


@dataclass(frozen=True)
class Decision:
    """What to do for one schedule now."""

    create: str | None  # the run to start (for ``last_schedule_time``)
    cancel: tuple[str, ...]  # unfinished runs to cancel first (Replace)
    last_schedule_time: dt.datetime | None
    next_schedule_time: dt.datetime | None  # also when to look again; None when suspended
    skipped: Skip | None = None
    too_many_missed: int = 0  # how many missed times were counted, if over the limit


def decide(
    cron: Cron,
    *,
    workflow: str,
    schedule: str,
    policy: ConcurrencyPolicy,
    suspend: bool,
    last: dt.datetime | None,
    found: Due | None,
    unfinished: Collection[str],
    now: dt.datetime,
) -> Decision:
    """The runs to start and cancel for ``found`` (from :func:`due`), given the
    schedule's ``unfinished`` runs (only needed for Forbid and Replace)."""
    if suspend:
        return Decision(None, (), last, None, Skip.SUSPENDED if found else None)
    upcoming = cron.after(now)
    if found is None:
        return Decision(None, (), last, upcoming)
    name = run_name(workflow, schedule, found.time)
    # The run for this very time may exist already (a pass whose status write was
    # lost): creating it again is a no-op, and it must not block or replace itself.
    others = tuple(sorted(r for r in unfinished if r != name))
    too_many = found.missed if found.missed > TOO_MANY_MISSED else 0
    if policy == ConcurrencyPolicy.FORBID and others:
        return Decision(None, (), last, upcoming, Skip.FORBIDDEN, too_many)
    cancel = others if policy == ConcurrencyPolicy.REPLACE else ()
    return Decision(name, cancel, found.time, upcoming, None, too_many)


def problems(schedules: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why each schedule the operator cannot evaluate cannot be, one line each."""
    found = []
    for schedule in schedules:
        try:
            parse(str(schedule.get("cron", "")), schedule.get("timeZone"))
        except ScheduleError as exc:
            found.append(f"schedule {schedule.get('name', '?')}: {exc}")
    return found


def scheduled_condition(
    schedules: Sequence[Mapping[str, Any]], generation: int | None = None
) -> Condition | None:
    """The Workflow's Scheduled condition (without its transition time); None
    without schedules. A schedule that cannot be evaluated starts no runs; the
    others go on."""
    if not schedules:
        return None
    found = problems(schedules)
    return Condition(
        type=ConditionType.SCHEDULED,
        status=ConditionStatus.FALSE if found else ConditionStatus.TRUE,
        reason=Reason.INVALID_SCHEDULE if found else Reason.VALID,
        message="; ".join(found) if found else f"{len(schedules)} schedule(s) in effect",
        observed_generation=generation,
    )


def parse_time(value: str | None) -> dt.datetime | None:
    """A time as status holds it (RFC 3339), or None."""
    return dt.datetime.fromisoformat(value) if value else None
