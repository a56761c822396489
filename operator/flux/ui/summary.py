"""A run's summary: input, outcome, where it waits and the command that goes on."""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flux.ui.source import Counts, HistoryItem, RunRow
from flux.ui.values import error_text


@dataclass(frozen=True)
class Pause:
    name: str
    output: Any
    command: str


@dataclass(frozen=True)
class Summary:
    run: RunRow
    input: Any
    output: Any
    completed: bool
    error: Any
    error_text: str | None
    pause: Pause | None
    # The command that continues an interrupted run.
    continue_command: str | None
    started: dt.datetime | None
    finished: dt.datetime | None
    calls: int
    attempts: int
    events: int
    # Ends the duration of a run still going (default: its last update).
    now: dt.datetime | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.finished or self.now or self.run.updated
        return max(0.0, (end - self.started).total_seconds())


_FINAL = {"WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"}


def local_resume(run: RunRow, pause: str | None) -> str:
    """The `flux` command that resumes a paused run (or continues an interrupted one)."""
    if pause is None:
        return f"flux resume {shlex.quote(run.id)}"
    return f"flux resume {shlex.quote(run.id)} --pause {shlex.quote(pause)} --input JSON"


def summarize(
    run: RunRow,
    steps: list[HistoryItem],
    resume: Callable[[RunRow, str | None], str] = local_resume,
    counts: Counts | None = None,
    now: dt.datetime | None = None,
) -> Summary:
    """``steps``: the whole history, or only the workflow's and pause events with
    the run's ``counts`` taken by the store. ``resume`` writes the command that
    resumes the run at a pause (or, given None, continues it)."""
    input_value = None
    output = error = None
    completed = False
    started = finished = None
    open_pauses: dict[str, HistoryItem] = {}
    calls: set[str] = set()
    retries = 0
    for step in steps:
        match step.type:
            case "WORKFLOW_STARTED":
                input_value, started = step.value, started or step.time
            case "WORKFLOW_COMPLETED":
                output, completed, error = step.value, True, None
            case "WORKFLOW_FAILED":
                error, completed = step.value, False
            case "TASK_STARTED":
                calls.add(step.call)
            case "TASK_RETRY_STARTED":
                retries += 1
            case "TASK_PAUSED":
                open_pauses[step.call] = step
            case "TASK_RESUMED" | "TASK_CANCELLED":
                open_pauses.pop(step.call, None)
        if step.type in _FINAL:
            finished = step.time
        elif step.type in ("WORKFLOW_RESUMED", "WORKFLOW_STARTED"):
            finished = None
    pause = None
    waiting = next(iter(open_pauses.values()), None)
    if waiting is not None and run.state == "PAUSED":
        output_value = waiting.value.get("output") if isinstance(waiting.value, dict) else None
        pause = Pause(waiting.name, output_value, resume(run, waiting.name))
    return Summary(
        run=run,
        input=input_value,
        output=output,
        completed=completed,
        error=error,
        error_text=error_text(error) if error is not None else None,
        pause=pause,
        continue_command=resume(run, None) if run.interrupted else None,
        started=started,
        finished=finished,
        calls=counts.calls if counts else len(calls),
        attempts=counts.calls + counts.retries if counts else len(calls) + retries,
        events=counts.events if counts else len(steps),
        now=now,
    )
