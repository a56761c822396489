"""What a workflow asks its executor to do."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flux.task import Task


@dataclass(frozen=True)
class ScheduleTask:
    """Run a task call under its policy until it completes, fails or is cancelled.

    ``resumed`` is true when the call was already in flight before a restart;
    its progress (attempts, retry times) is then read from history.
    """

    call_id: str
    name: str
    task: Task[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    resumed: bool = False


@dataclass(frozen=True)
class StartTimer:
    """Deliver TASK_COMPLETED for ``call_id`` at ``until``."""

    call_id: str
    until: dt.datetime


@dataclass(frozen=True)
class CancelCall:
    """The workflow abandoned this call: stop it (running its rollback, if any)."""

    call_id: str


Command = ScheduleTask | StartTimer | CancelCall
