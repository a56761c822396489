"""A run's timeline: each task call as a bar, with what happened inside it.

Built in one pass over history (:class:`flux.ui.source.HistoryItem`). A big run's page
passes only the events of the calls it shows (one page of bars) with the run's
own start and end, and the per-task aggregate of every call summed by the store
(``task_groups`` of a source: the rules of :func:`groups_of`, in SQL).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flux.ui.pods import PodStage
from flux.ui.source import HistoryItem
from flux.ui.values import error_text, is_timeout


@dataclass(frozen=True)
class Mark:
    """Something inside a call: a point (``end is None``) or an interval, in
    seconds from the run's start."""

    kind: str  # retry-wait, attempt-failed, timeout, fallback, rollback, pod-queued, ...
    start: float
    end: float | None
    label: str


@dataclass
class CallBar:
    call: str
    name: str
    start: float
    end: float | None = None  # None while the call has no outcome
    status: str = "running"  # running, completed, failed, cancelled, paused, resumed
    attempts: int = 1
    marks: list[Mark] = field(default_factory=list)
    first_event: int = 0

    @property
    def duration(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)

    @property
    def kinds(self) -> set[str]:
        return {m.kind for m in self.marks}


@dataclass
class TaskGroup:
    """Every call of one task name: how many, how they ended, how long they took."""

    name: str
    calls: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    rollbacks: int = 0
    total: float = 0.0
    longest: float = 0.0
    start: float = 0.0
    end: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Timeline:
    origin: dt.datetime | None
    span: float  # seconds from origin to the last thing shown; never 0
    bars: list[CallBar]
    groups: list[TaskGroup]
    calls: int = 0  # every call of the run, when ``bars`` are one page of them

    @property
    def shows_pods(self) -> bool:
        return any(m.kind.startswith("pod-") for bar in self.bars for m in bar.marks)

    def left(self, seconds: float) -> float:
        """Percent of the width, for a bar or mark starting ``seconds`` in."""
        return round(min(100.0, max(0.0, seconds / self.span * 100)), 3)

    def width(self, start: float, end: float | None) -> float:
        stop = self.span if end is None else end
        return round(max(0.15, min(100.0 - self.left(start), (stop - start) / self.span * 100)), 3)


_OUTCOMES = {
    "TASK_COMPLETED": "completed",
    "TASK_FAILED": "failed",
    "TASK_CANCELLED": "cancelled",
    "TASK_RESUMED": "resumed",
}


def build_timeline(
    steps: list[HistoryItem],
    now: dt.datetime | None = None,
    *,
    origin: dt.datetime | None = None,
    until: dt.datetime | None = None,
    pods: dict[str, list[PodStage]] | None = None,
) -> Timeline:
    """Bars for the calls in ``steps``. ``origin`` and ``until`` (default: the first
    and last event) are the run's start and end; ``now`` ends the bars of calls
    still open. ``pods``: the stages of task pods on Kubernetes, by call id."""
    if not steps:
        return Timeline(origin, 1.0, [], [])
    origin = origin or steps[0].time
    bars: dict[str, CallBar] = {}
    open_side: dict[str, tuple[str, float, str]] = {}  # call -> fallback/rollback in progress
    last = 0.0
    for step in steps:
        at = (step.time - origin).total_seconds()
        last = max(last, at)
        if not step.type.startswith("TASK_"):
            continue
        bar = bars.get(step.call)
        if bar is None:
            bar = bars[step.call] = CallBar(step.call, step.name, at, first_event=step.id)
        _apply(bar, step, at, open_side)
    end = last
    for moment in (until, now):
        if moment is not None:
            end = max(end, (moment - origin).total_seconds())
    for call, (kind, start, label) in open_side.items():
        bars[call].marks.append(Mark(kind, start, None if start >= end else end, label))
    for call, stages in (pods or {}).items():
        if call in bars:
            bars[call].marks.extend(_pod_marks(stages, origin, end))
    ordered = sorted(bars.values(), key=lambda b: b.first_event)
    return Timeline(origin, max(end, 0.001), ordered, groups_of(ordered), len(ordered))


def _pod_marks(stages: list[PodStage], origin: dt.datetime, end: float) -> list[Mark]:
    marks = []
    for stage in stages:
        start = (stage.start - origin).total_seconds()
        stop = end if stage.end is None else (stage.end - origin).total_seconds()
        still = " (now)" if stage.end is None else ""
        marks.append(
            Mark(f"pod-{stage.kind}", start, stop, f"pod {stage.pod}: {stage.kind}{still}")
        )
    return marks


def _apply(
    bar: CallBar, step: HistoryItem, at: float, open_side: dict[str, tuple[str, float, str]]
) -> None:
    value: Any = step.value
    kind = step.type
    if kind == "TASK_PAUSED":
        bar.status = "paused"
    elif kind in _OUTCOMES:
        bar.status, bar.end = _OUTCOMES[kind], at
        if kind == "TASK_FAILED" and is_timeout(value):
            bar.marks.append(Mark("timeout", at, None, f"timed out: {error_text(value)}"))
    elif kind == "TASK_RETRY_STARTED" and isinstance(value, dict):
        attempt = _int(value.get("attempt"), bar.attempts + 1)
        bar.attempts = max(bar.attempts, attempt)
        delay = _float(value.get("delay"))
        error = value.get("error")
        if is_timeout(error):
            bar.marks.append(Mark("timeout", at, None, f"timed out: {error_text(error)}"))
        label = f"wait {delay:g}s, then attempt {attempt}, after {error_text(error)}"
        bar.marks.append(Mark("retry-wait", at, at + delay, label))
    elif kind == "TASK_RETRY_FAILED" and isinstance(value, dict):
        text = f"attempt {value.get('attempt')} failed: {error_text(value.get('error'))}"
        bar.marks.append(Mark("attempt-failed", at, None, text))
    elif kind in ("TASK_FALLBACK_STARTED", "TASK_ROLLBACK_STARTED"):
        side = "fallback" if "FALLBACK" in kind else "rollback"
        error = value.get("error") if isinstance(value, dict) else None
        if is_timeout(error):
            bar.marks.append(Mark("timeout", at, None, f"timed out: {error_text(error)}"))
        open_side[bar.call] = (side, at, f"{side} after {error_text(error)}")
    elif kind.startswith(("TASK_FALLBACK_", "TASK_ROLLBACK_")) and bar.call in open_side:
        side, start, label = open_side.pop(bar.call)
        if kind.endswith("_FAILED"):
            error = value.get("error") if isinstance(value, dict) else value
            label += f"; the {side} failed: {error_text(error)}"
        bar.marks.append(Mark(side, start, at, label))


def groups_of(bars: list[CallBar]) -> list[TaskGroup]:
    groups: dict[str, TaskGroup] = {}
    for bar in bars:
        group = groups.get(bar.name)
        if group is None:
            group = groups[bar.name] = TaskGroup(bar.name, start=bar.start, end=bar.start)
        group.calls += 1
        group.statuses[bar.status] = group.statuses.get(bar.status, 0) + 1
        kinds = bar.kinds
        group.retried += bar.attempts > 1
        group.timeouts += "timeout" in kinds
        group.fallbacks += "fallback" in kinds
        group.rollbacks += "rollback" in kinds
        duration = bar.duration or 0.0
        group.total += duration
        group.longest = max(group.longest, duration)
        group.end = max(group.end, bar.end if bar.end is not None else bar.start)
    return list(groups.values())


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else 0.0
