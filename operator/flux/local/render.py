"""How stored runs look, as JSON and as tables (``flux show``, ``flux list``).

Everything here works on history as stored (codec-encoded JSON), so showing a
run never imports or runs the workflow's code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from rich.console import Console
from rich.table import Table
from rich.text import Text

from flux.engine.failures import ErrorInfo, describe
from flux.events import EventType, ExecutionEvent, ExecutionState
from flux.local.store import RunRecord

SHORT = 60
LONG = 300


@dataclass(frozen=True)
class RunView:
    """A stored run with its history, as ``flux show`` and ``flux list`` present it."""

    record: RunRecord
    # Not finished, not paused and no live process executing it: `flux resume` continues it.
    interrupted: bool
    events: list[ExecutionEvent] = field(default_factory=list)

    @property
    def state_label(self) -> str:
        state = self.record.state.value
        return f"{state} (interrupted)" if self.interrupted else state

    def brief(self) -> dict[str, Any]:
        record = self.record
        return {
            "id": record.id,
            "workflow": record.workflow,
            "state": record.state.value,
            "interrupted": self.interrupted,
            "created": record.created.isoformat(),
            "updated": record.updated.isoformat(),
        }

    def to_dict(self) -> dict[str, Any]:
        pause = open_pause(self.events)
        return {
            **self.brief(),
            "input": self.events[0].value if self.events else None,
            "output": last_value(self.events, EventType.WORKFLOW_COMPLETED),
            "error": last_value(self.events, EventType.WORKFLOW_FAILED),
            "pause": {"name": pause.name, "output": pause_output(pause)} if pause else None,
            "events": [e.to_dict() for e in self.events],
        }


def open_pause(events: Iterable[ExecutionEvent]) -> ExecutionEvent | None:
    """The TASK_PAUSED event of the pause point the run waits at, if any."""
    open_pauses: dict[str, ExecutionEvent] = {}
    for event in events:
        if event.type == EventType.TASK_PAUSED:
            open_pauses[event.source_id] = event
        elif event.type in (EventType.TASK_RESUMED, EventType.TASK_CANCELLED):
            open_pauses.pop(event.source_id, None)
    return next(iter(open_pauses.values()), None)


def pause_output(pause: ExecutionEvent) -> Any:
    return pause.value.get("output") if isinstance(pause.value, dict) else None


def last_value(events: list[ExecutionEvent], event_type: EventType) -> Any:
    return next((e.value for e in reversed(events) if e.type == event_type), None)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def short(value: Any, limit: int = SHORT) -> str:
    return short_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")), limit)


def short_text(text: str, limit: int = SHORT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_failure(info: Any) -> str:
    if not isinstance(info, dict):
        return short(info)
    error = cast(ErrorInfo, info)
    attempts = find_in_chain(error, lambda e: e.get("attempts"))
    text = describe(error)
    return f"{text} (after {attempts} attempts)" if attempts else text


def find_in_chain(info: ErrorInfo, pick: Callable[[ErrorInfo], Any]) -> Any:
    """The first non-empty ``pick(level)`` over an error and its chain of causes."""
    level: ErrorInfo | None = info
    while level is not None:
        found = pick(level)
        if found:
            return found
        level = level.get("cause")
    return None


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------- events


def event_detail(event: ExecutionEvent) -> str:
    """A few words on what the event records: arguments, attempts, delays, errors."""
    try:
        return _DETAILS.get(event.type, _value_detail)(event.value)
    except (AttributeError, KeyError, TypeError, ValueError):
        # History written by another version of Flux: show it raw rather than fail.
        return short(event.value)


def _value_detail(value: Any) -> str:
    return "" if value is None else short(value)


def _labelled(label: str, value: Any) -> str:
    return "" if value is None else f"{label} {short(value)}"


def _started_detail(value: Any) -> str:
    if not isinstance(value, dict):
        return ""
    if "until" in value:
        return f"sleep {value['seconds']:g}s until {value['until']}"
    args, kwargs = value.get("args") or [], value.get("kwargs") or {}
    parts = [short(a, 30) for a in args] + [f"{k}={short(v, 30)}" for k, v in kwargs.items()]
    return short_text(f"({', '.join(parts)})") if "args" in value else ""


def _retry_started_detail(value: Any) -> str:
    return (
        f"attempt {value['attempt']} in {value['delay']:g}s "
        f"after {describe_failure(value['error'])}"
    )


_DETAILS: dict[EventType, Callable[[Any], str]] = {
    EventType.WORKFLOW_STARTED: lambda v: _labelled("input", v),
    EventType.WORKFLOW_COMPLETED: lambda v: _labelled("output", v),
    EventType.WORKFLOW_FAILED: describe_failure,
    EventType.WORKFLOW_PAUSED: lambda v: f"at pause {v['pause']!r}",
    EventType.WORKFLOW_RESUMED: lambda v: "",
    EventType.WORKFLOW_CANCELLED: lambda v: "",
    EventType.TASK_STARTED: _started_detail,
    EventType.TASK_FAILED: describe_failure,
    EventType.TASK_RETRY_STARTED: _retry_started_detail,
    EventType.TASK_RETRY_FAILED: lambda v: (
        f"attempt {v['attempt']}: " + describe_failure(v["error"])
    ),
    EventType.TASK_RETRY_COMPLETED: lambda v: f"attempt {v['attempt']} succeeded",
    EventType.TASK_FALLBACK_STARTED: lambda v: f"after {describe_failure(v['error'])}",
    EventType.TASK_ROLLBACK_STARTED: lambda v: f"after {describe_failure(v['error'])}",
    EventType.TASK_FALLBACK_FAILED: lambda v: describe_failure(v["error"]),
    EventType.TASK_ROLLBACK_FAILED: lambda v: describe_failure(v["error"]),
    EventType.TASK_FALLBACK_COMPLETED: lambda v: "",
    EventType.TASK_ROLLBACK_COMPLETED: lambda v: "",
    EventType.TASK_PAUSED: lambda v: _labelled("output", v["output"]),
    EventType.TASK_RESUMED: lambda v: _labelled("input", v),
    EventType.TASK_CANCELLED: lambda v: "",
}

_STYLES = {
    EventType.WORKFLOW_COMPLETED: "green",
    EventType.TASK_COMPLETED: "green",
    EventType.WORKFLOW_FAILED: "red",
    EventType.TASK_FAILED: "red",
    EventType.TASK_RETRY_FAILED: "red",
    EventType.TASK_FALLBACK_FAILED: "red",
    EventType.TASK_ROLLBACK_FAILED: "red",
    EventType.TASK_RETRY_STARTED: "yellow",
    EventType.WORKFLOW_PAUSED: "yellow",
    EventType.WORKFLOW_CANCELLED: "magenta",
    EventType.TASK_CANCELLED: "magenta",
}


def timeline(events: list[ExecutionEvent]) -> Table:
    table = Table("#", "time", "type", "call id", "name", "detail", title="Events")
    for event in events:
        table.add_row(
            str(event.id),
            event.time.astimezone(dt.UTC).strftime("%H:%M:%S.%f")[:-3],
            Text(event.type.value, style=_STYLES.get(event.type, "")),
            # Text, not str: names and values must never be read as rich markup.
            Text(event.source_id if event.type.name.startswith("TASK_") else ""),
            Text(event.name),
            Text(event_detail(event)),
        )
    return table


# ----------------------------------------------------------------------- runs

_STATE_STYLES = {
    ExecutionState.COMPLETED: "green",
    ExecutionState.FAILED: "red",
    ExecutionState.PAUSED: "yellow",
    ExecutionState.CANCELLED: "magenta",
}


def print_run(console: Console, view: RunView) -> None:
    data = view.to_dict()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    state_style = _STATE_STYLES.get(view.record.state, "")
    rows: list[tuple[str, Text]] = [
        ("Run", Text(view.record.id)),
        ("Workflow", Text(view.record.workflow)),
        ("State", Text(view.state_label, style=state_style)),
        ("Created", Text(timestamp(view.record.created))),
        ("Updated", Text(timestamp(view.record.updated))),
        ("Input", Text(short(data["input"], LONG))),
    ]
    if view.record.state == ExecutionState.COMPLETED:
        rows.append(("Output", Text(short(data["output"], LONG))))
    if data["error"] is not None:
        rows.append(("Error", Text(describe_failure(data["error"]), style="red")))
    if data["pause"] is not None:
        pause = data["pause"]
        rows.append(("Paused at", Text(f"{pause['name']!r} (output {short(pause['output'])})")))
    for label, value in rows:
        grid.add_row(label, value)
    console.print(grid)
    console.print(timeline(view.events))
    hint = next_step_hint(view)
    if hint:
        console.print(Text(hint, style="dim"))


def next_step_hint(view: RunView) -> str | None:
    run_id = view.record.id
    if view.record.state == ExecutionState.PAUSED:
        return f"resume with: flux resume {run_id} --input JSON"
    if view.interrupted:
        return f"continue with: flux resume {run_id}"
    return None


def runs_table(views: list[RunView]) -> Table:
    table = Table("id", "workflow", "state", "created", "updated")
    for view in views:
        table.add_row(
            view.record.id,
            Text(view.record.workflow),
            Text(view.state_label, style=_STATE_STYLES.get(view.record.state, "")),
            timestamp(view.record.created),
            timestamp(view.record.updated),
        )
    return table


# ------------------------------------------------------------ kubernetes runs

_PHASE_STYLES = {"Succeeded": "green", "Failed": "red", "Paused": "yellow", "Cancelled": "magenta"}


def print_kube_run(console: Console, view: dict[str, Any]) -> None:
    """A WorkflowRun as ``flux.k8s.inspect.read_run`` reads it back."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    phase = str(view["phase"])
    records = view["tasks"]
    attempts = sum(int(r.get("attempts", 0)) for r in records)
    rows = [
        ("Run", Text(f"{view['namespace']}/{view['name']}")),
        ("Workflow", Text(str(view["workflow"]))),
        ("Phase", Text(phase, style=_PHASE_STYLES.get(phase, ""))),
        ("Started", Text(str(view["startTime"] or "-"))),
        ("Finished", Text(str(view["finishTime"] or "-"))),
        ("Tasks", Text(f"{len(records)} calls, {attempts} attempts")),
    ]
    if phase == "Succeeded":
        rows.append(("Output", Text(short(view["output"], LONG))))
    if view["error"]:
        rows.append(("Error", Text(str(view["error"].get("message")), style="red")))
    if view["pause"]:
        rows.append(("Paused at", Text(repr(view["pause"].get("name")))))
    for label, value in rows:
        grid.add_row(label, value)
    console.print(grid)
    events = [ExecutionEvent.from_dict({**e, "source_id": e["sourceId"]}) for e in view["history"]]
    console.print(timeline(events))
