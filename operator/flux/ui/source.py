"""What the console reads from a store of runs, whichever executor wrote it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from flux.ui.pods import PodStage
    from flux.ui.timeline import TaskGroup

PAGE_SIZE = 50


@dataclass(frozen=True)
class RunRow:
    id: str
    workflow: str
    state: str
    created: dt.datetime
    updated: dt.datetime
    # Not finished, not paused, and no live process executes it.
    interrupted: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None


class HistoryItem(NamedTuple):
    """One history event, light: ``value`` is loaded only for the types that the
    summary, timeline and graph read (never the arguments of every task call).
    A tuple, because a run may have 100,000 of them to build per page."""

    id: int
    type: str
    call: str
    name: str
    time: dt.datetime
    value: Any = None


OUTCOME_TYPES = ("TASK_COMPLETED", "TASK_FAILED", "TASK_CANCELLED", "TASK_RESUMED")
# What the graph reads: task starts and outcomes, and the workflow's own events.
MOVE_TYPES = (
    *OUTCOME_TYPES,
    "TASK_STARTED",
    "TASK_PAUSED",
    "WORKFLOW_STARTED",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_FAILED",
    "WORKFLOW_PAUSED",
    "WORKFLOW_RESUMED",
    "WORKFLOW_CANCELLED",
)


class Move(NamedTuple):
    """An event as the graph reads it: no time, no value."""

    type: str
    call: str
    name: str


@dataclass(frozen=True)
class Counts:
    """A run's size, counted by the store rather than by reading every event."""

    events: int
    calls: int  # task calls started (pause points not included)
    pauses: int
    retries: int
    first: dt.datetime | None
    last: dt.datetime | None


@dataclass(frozen=True)
class EventRow:
    """One history event whole, as the history page and a task's record show it."""

    id: int
    type: str
    call: str
    name: str
    time: dt.datetime
    value: Any


@dataclass(frozen=True)
class RunQuery:
    workflow: str | None = None
    state: str | None = None
    since: dt.datetime | None = None
    page: int = 1


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRow]
    total: int
    page: int
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class WorkflowCount:
    workflow: str
    state: str
    runs: int
    last: dt.datetime


class RunNotFound(LookupError):
    pass


class RunUnreadable(LookupError):
    """The run is there, but part of what it recorded is lost (an archived
    history chunk deleted or rewritten): no page can show it whole."""


class RunSource(Protocol):
    """A read-only view of stored runs."""

    def list_runs(self, query: RunQuery) -> RunPage: ...

    def workflow_counts(self) -> list[WorkflowCount]: ...

    def workflow_names(self) -> list[str]: ...

    def get_run(self, run_id: str) -> RunRow: ...

    def steps(self, run_id: str) -> list[HistoryItem]: ...

    def counts(self, run_id: str) -> Counts: ...

    def summary_steps(self, run_id: str) -> list[HistoryItem]:
        """The workflow's own events and its pause points: what the summary reads."""
        ...

    def moves(self, run_id: str) -> Generator[Move, None, None]:
        """The run's task starts and outcomes and its own events, in order, read
        lazily: the graph stops reading once it has all it draws."""
        ...

    def outcomes(self, run_id: str, calls: list[str]) -> list[Move]:
        """The outcome events of these calls."""
        ...

    def task_groups(self, run_id: str) -> list[TaskGroup]: ...

    def call_steps(self, run_id: str, offset: int, limit: int) -> list[HistoryItem]:
        """Every event of the calls ``offset`` to ``offset + limit`` in start order."""
        ...

    def pod_stages(self, run_id: str) -> dict[str, list[PodStage]]:
        """Stages of the run's task pods that still exist, by call id (Kubernetes)."""
        ...

    def call_logs(self, run_id: str, call_id: str) -> str | None:
        """The log of the call's newest pod, if the executor keeps one."""
        ...

    def event_count(self, run_id: str) -> int: ...

    def events(self, run_id: str, after: int, limit: int) -> list[EventRow]: ...

    def call_events(self, run_id: str, call_id: str) -> list[EventRow]: ...
