"""The per-run reads of a source, over a history held whole in memory.

A WorkflowRun is read whole from the API (status plus archived ConfigMaps), so
the Kubernetes source answers the page's questions from that copy instead of
from SQL; the answers follow the same rules as the SQLite source's.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from flux.ui.source import MOVE_TYPES, OUTCOME_TYPES, Counts, EventRow, HistoryItem, Move
from flux.ui.timeline import TaskGroup, build_timeline, groups_of

_SUMMARY_TASK_TYPES = {"TASK_PAUSED", "TASK_RESUMED", "TASK_CANCELLED"}
_OUTCOMES = set(OUTCOME_TYPES)
_MOVES = set(MOVE_TYPES)


@dataclass
class MemoryRun:
    events: list[EventRow]
    _steps: list[HistoryItem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._steps = [
            HistoryItem(e.id, e.type, e.call, e.name, e.time, e.value) for e in self.events
        ]

    def steps(self) -> list[HistoryItem]:
        return self._steps

    def counts(self) -> Counts:
        types = [s.type for s in self._steps]
        return Counts(
            events=len(types),
            calls=types.count("TASK_STARTED"),
            pauses=types.count("TASK_PAUSED"),
            retries=types.count("TASK_RETRY_STARTED"),
            first=self._steps[0].time if self._steps else None,
            last=self._steps[-1].time if self._steps else None,
        )

    def summary_steps(self) -> list[HistoryItem]:
        return [
            s
            for s in self._steps
            if s.type.startswith("WORKFLOW_") or s.type in _SUMMARY_TASK_TYPES
        ]

    def moves(self) -> Generator[Move, None, None]:
        for s in self._steps:
            if s.type in _MOVES:
                yield Move(s.type, s.call, s.name)

    def outcomes(self, calls: list[str]) -> list[Move]:
        wanted = set(calls)
        return [
            Move(s.type, s.call, s.name)
            for s in self._steps
            if s.type in _OUTCOMES and s.call in wanted
        ]

    def task_groups(self) -> list[TaskGroup]:
        return groups_of(build_timeline(self._steps).bars)

    def call_steps(self, offset: int, limit: int) -> list[HistoryItem]:
        starts = [s.call for s in self._steps if s.type in ("TASK_STARTED", "TASK_PAUSED")]
        page = set(starts[offset : offset + limit])
        return [s for s in self._steps if s.call in page and s.type.startswith("TASK_")]

    def page(self, after: int, limit: int) -> list[EventRow]:
        return [e for e in self.events if e.id > after][:limit]

    def call_events(self, call_id: str) -> list[EventRow]:
        return [e for e in self.events if e.call == call_id and e.type.startswith("TASK_")]
