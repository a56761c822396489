"""What the console reads from a store of runs, whichever executor wrote it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Step:
    """One history event, light: ``value`` is loaded only for the types that the
    summary, timeline and graph read (never the arguments of every task call)."""

    id: int
    type: str
    call: str
    name: str
    time: dt.datetime
    value: Any = None


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


class RunSource(Protocol):
    """A read-only view of stored runs."""

    def list_runs(self, query: RunQuery) -> RunPage: ...

    def workflow_counts(self) -> list[WorkflowCount]: ...

    def workflow_names(self) -> list[str]: ...

    def get_run(self, run_id: str) -> RunRow: ...

    def steps(self, run_id: str) -> list[Step]: ...

    def event_count(self, run_id: str) -> int: ...

    def events(self, run_id: str, after: int, limit: int) -> list[EventRow]: ...

    def call_events(self, run_id: str, call_id: str) -> list[EventRow]: ...
