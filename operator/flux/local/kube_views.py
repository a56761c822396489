"""How runs on a cluster look in the terminal (``flux kube list``, the outcome of
``run``/``watch``/``resume``), and the exit code each phase gives: pure, from
bodies already read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

from flux.k8s.states import Phase
from flux.k8s.timestamps import parse_time
from flux.local.cli_support import ExitCode
from flux.local.render import short_text

_PHASE_STYLES: dict[Phase | None, str] = {
    Phase.SUCCEEDED: "green",
    Phase.FAILED: "red",
    Phase.PAUSED: "yellow",
    Phase.CANCELLED: "magenta",
}
EXIT_CODES: dict[Phase | None, ExitCode] = {
    Phase.SUCCEEDED: ExitCode.SUCCEEDED,
    Phase.FAILED: ExitCode.FAILED,
    Phase.CANCELLED: ExitCode.FAILED,
    Phase.PAUSED: ExitCode.PAUSED,
}


def span(seconds: float) -> str:
    """A duration as kubectl shows ages: 45s, 3m12s, 5h4m, 2d3h."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


@dataclass(frozen=True)
class RunRow:
    """One run as ``flux kube list`` shows it."""

    namespace: str
    name: str
    workflow: str
    phase: str
    created: dt.datetime | None
    started: dt.datetime | None
    finished: dt.datetime | None

    @classmethod
    def of(cls, run: dict[str, Any]) -> RunRow:
        meta, status = run.get("metadata") or {}, run.get("status") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            workflow=str(((run.get("spec") or {}).get("workflowRef") or {}).get("name", "")),
            phase=str(status.get("phase") or Phase.PENDING),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(status.get("startTime")),
            finished=parse_time(status.get("finishTime")),
        )

    def age(self, now: dt.datetime) -> float | None:
        return (now - self.created).total_seconds() if self.created else None

    def duration(self, now: dt.datetime) -> float | None:
        """From start to finish, or until now while it has not finished."""
        if self.started is None:
            return None
        return ((self.finished or now) - self.started).total_seconds()

    def to_dict(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "workflow": self.workflow,
            "phase": self.phase,
            "created": _iso(self.created),
            "startTime": _iso(self.started),
            "finishTime": _iso(self.finished),
            "durationSeconds": self.duration(now),
        }


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule of a Workflow, as its status says it (``status.schedules[]``)."""

    namespace: str
    workflow: str
    schedule: str
    next_time: dt.datetime | None
    last_time: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "workflow": self.workflow,
            "schedule": self.schedule,
            "nextScheduleTime": _iso(self.next_time),
            "lastScheduleTime": _iso(self.last_time),
        }


def run_rows(runs: list[dict[str, Any]]) -> list[RunRow]:
    """Newest first."""
    rows = [RunRow.of(run) for run in runs]
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: (r.created or oldest, r.name), reverse=True)


def schedule_rows(workflows: list[dict[str, Any]]) -> list[ScheduleRow]:
    rows = []
    for workflow in workflows:
        meta = workflow.get("metadata") or {}
        for index, entry in enumerate((workflow.get("status") or {}).get("schedules") or []):
            rows.append(
                ScheduleRow(
                    namespace=str(meta.get("namespace", "")),
                    workflow=str(meta.get("name", "")),
                    schedule=str(entry.get("name") or index),
                    next_time=parse_time(entry.get("nextScheduleTime")),
                    last_time=parse_time(entry.get("lastScheduleTime")),
                )
            )
    return sorted(rows, key=lambda r: (r.namespace, r.workflow, r.schedule))


def runs_table(rows: list[RunRow], now: dt.datetime, *, namespaces: bool = False) -> Table:
    columns = ["namespace"] if namespaces else []
    table = Table(*columns, "run", "workflow", "phase", "age", "duration")
    for row in rows:
        age, duration = row.age(now), row.duration(now)
        table.add_row(
            *([Text(row.namespace)] if namespaces else []),
            Text(row.name),
            Text(row.workflow),
            Text(row.phase, style=_PHASE_STYLES.get(as_phase(row.phase), "")),
            span(age) if age is not None else "-",
            span(duration) if duration is not None else "-",
        )
    return table


def schedules_table(rows: list[ScheduleRow], now: dt.datetime) -> Table:
    table = Table("workflow", "schedule", "next run", "last run", title="Schedules")
    for row in rows:
        table.add_row(
            Text(f"{row.namespace}/{row.workflow}"),
            Text(row.schedule),
            _when(row.next_time, now),
            _when(row.last_time, now),
        )
    return table


def exit_code(phase: str) -> ExitCode:
    """0 succeeded, 1 failed or cancelled, 3 paused; a run not settled is not an outcome."""
    code = EXIT_CODES.get(as_phase(phase))
    if code is None:
        raise ValueError(f"phase {phase!r} is not an outcome")
    return code


def outcome_line(run: dict[str, Any], namespace: str) -> str:
    """What happened to a settled run, in one line for stderr."""
    name = run["metadata"]["name"]
    status = run.get("status") or {}
    phase = str(status.get("phase"))
    ns = f" -n {namespace}" if namespace else ""
    if phase == Phase.SUCCEEDED:
        return f"run {name} succeeded"
    if phase == Phase.PAUSED:
        where = repr((status.get("pause") or {}).get("name") or "a pause point")
        hint = f"flux kube resume {name}{ns} --input JSON"
        return f"run {name} paused at {where}; resume with: {hint}"
    if phase == Phase.CANCELLED:
        return f"run {name} was cancelled"
    error = status.get("error") or {}
    what = ": ".join(str(error[k]) for k in ("type", "message") if error.get(k)) or "no error given"
    return f"error: run {name} failed: {short_text(what, 300)}"


def as_phase(value: str) -> Phase | None:
    try:
        return Phase(value)
    except ValueError:
        return None  # written by another version of Flux


def _when(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "-"
    stamp = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = (moment - now).total_seconds()
    return f"{stamp} (in {span(delta)})" if delta >= 0 else f"{stamp} ({span(-delta)} ago)"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None
