"""Runs of the embedded engine, read from its SQLite store without ever writing.

The database is opened with ``mode=ro``: a bug in the console cannot change a
run, and the console works on a store the executor is writing at the same time
(WAL lets readers and one writer proceed together).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flux.ui.pods import PodStage
from flux.ui.source import (
    MOVE_TYPES,
    OUTCOME_TYPES,
    PAGE_SIZE,
    Counts,
    EventRow,
    HistoryItem,
    Move,
    RunNotFound,
    RunPage,
    RunQuery,
    RunRow,
    WorkflowCount,
)
from flux.ui.timeline import TaskGroup

# Event types whose values the summary, timeline and graph read; the values of
# the others (every task's arguments, every output) stay in the database.
STEP_VALUE_TYPES = (
    "WORKFLOW_STARTED",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_FAILED",
    "WORKFLOW_PAUSED",
    "TASK_FAILED",
    "TASK_RETRY_STARTED",
    "TASK_RETRY_FAILED",
    "TASK_RETRY_COMPLETED",
    "TASK_FALLBACK_STARTED",
    "TASK_FALLBACK_FAILED",
    "TASK_ROLLBACK_STARTED",
    "TASK_ROLLBACK_FAILED",
    "TASK_PAUSED",
)
_IN_STEP_TYPES = ",".join(f"'{t}'" for t in STEP_VALUE_TYPES)
_RUN_COLUMNS = "id, workflow, source, state, created, updated, owner"
_UNFINISHED = ("CREATED", "RUNNING")


class StoreMissing(FileNotFoundError):
    pass


class SqliteSource:
    """A :class:`flux.ui.source.RunSource` over ``$FLUX_HOME/flux.db``."""

    def __init__(self, path: Path):
        self.path = path

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if not self.path.is_file():
            raise StoreMissing(f"{self.path} does not exist (check FLUX_HOME)")
        # A connection per request: cheap, and no connection is shared across threads.
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            yield db
        finally:
            db.close()

    def list_runs(self, query: RunQuery) -> RunPage:
        where, params = _run_filter(query)
        page = max(1, query.page)
        with self._read() as db:
            total = db.execute(f"SELECT count(*) FROM runs{where}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs{where} "
                "ORDER BY created DESC, id LIMIT ? OFFSET ?",
                [*params, PAGE_SIZE, (page - 1) * PAGE_SIZE],
            ).fetchall()
        return RunPage([_run_row(r) for r in rows], total, page)

    def workflow_counts(self) -> list[WorkflowCount]:
        with self._read() as db:
            rows = db.execute(
                "SELECT workflow, state, count(*), max(created) FROM runs "
                "GROUP BY workflow, state ORDER BY workflow, state"
            ).fetchall()
        return [WorkflowCount(w, s, n, _time(last)) for w, s, n, last in rows]

    def workflow_names(self) -> list[str]:
        with self._read() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT workflow FROM runs ORDER BY 1")]

    def get_run(self, run_id: str) -> RunRow:
        with self._read() as db:
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return _run_row(row)

    def steps(self, run_id: str) -> list[HistoryItem]:
        return self._steps(run_id, "")

    def counts(self, run_id: str) -> Counts:
        with self._read() as db:
            events, calls, pauses, retries, first, last = db.execute(
                "SELECT count(*), coalesce(sum(type = 'TASK_STARTED'), 0), "
                "coalesce(sum(type = 'TASK_PAUSED'), 0), "
                "coalesce(sum(type = 'TASK_RETRY_STARTED'), 0), min(time), max(time) "
                "FROM events WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        return Counts(events, calls, pauses, retries, _maybe_time(first), _maybe_time(last))

    def summary_steps(self, run_id: str) -> list[HistoryItem]:
        return self._steps(
            run_id,
            "AND (type LIKE 'WORKFLOW\\_%' ESCAPE '\\' "
            "OR type IN ('TASK_PAUSED', 'TASK_RESUMED', 'TASK_CANCELLED'))",
        )

    def moves(self, run_id: str) -> Generator[Move, None, None]:
        with self._read() as db:
            cursor = db.execute(
                "SELECT type, source_id, name FROM events WHERE run_id = ? "
                f"AND type IN ({_IN_MOVE_TYPES}) ORDER BY id",
                (run_id,),
            )
            yield from map(Move._make, cursor)

    def outcomes(self, run_id: str, calls: list[str]) -> list[Move]:
        found: list[Move] = []
        with self._read() as db:
            for first in range(0, len(calls), _ROWS_PER_QUERY):
                chunk = calls[first : first + _ROWS_PER_QUERY]
                rows = db.execute(
                    "SELECT type, source_id, name FROM events WHERE run_id = ? "
                    f"AND type IN ({_IN_OUTCOMES}) AND source_id IN ({','.join('?' * len(chunk))})"
                    " ORDER BY id",
                    [run_id, *chunk],
                )
                found += map(Move._make, rows)
        return found

    def task_groups(self, run_id: str) -> list[TaskGroup]:
        with self._read() as db:
            rows = db.execute(_GROUPS_SQL, (run_id,)).fetchall()
        groups: dict[str, TaskGroup] = {}
        for name, status, calls, retried, timeouts, fallbacks, rollbacks, total, longest in rows:
            group = groups.setdefault(name, TaskGroup(name))
            group.calls += calls
            group.statuses[status] = calls
            group.retried += retried
            group.timeouts += timeouts
            group.fallbacks += fallbacks
            group.rollbacks += rollbacks
            group.total += total
            group.longest = max(group.longest, longest)
        return list(groups.values())

    def call_steps(self, run_id: str, offset: int, limit: int) -> list[HistoryItem]:
        with self._read() as db:
            calls = [
                row[0]
                for row in db.execute(
                    "SELECT source_id FROM events WHERE run_id = ? "
                    "AND type IN ('TASK_STARTED', 'TASK_PAUSED') ORDER BY id LIMIT ? OFFSET ?",
                    (run_id, limit, offset),
                )
            ]
        if not calls:
            return []
        marks = ",".join("?" * len(calls))
        return self._steps(run_id, f"AND source_id IN ({marks})", calls)

    def _steps(self, run_id: str, where: str, params: list[str] | None = None) -> list[HistoryItem]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, type, source_id, name, time, "
                f"CASE WHEN type IN ({_IN_STEP_TYPES}) THEN value END "
                f"FROM events WHERE run_id = ? {where} ORDER BY id",
                [run_id, *(params or [])],
            ).fetchall()
        parse = dt.datetime.fromisoformat
        return [
            HistoryItem(i, t, s, n, parse(tm), None if v is None else _json(v))
            for i, t, s, n, tm, v in rows
        ]

    def pod_stages(self, run_id: str) -> dict[str, list[PodStage]]:
        return {}  # the embedded engine runs tasks in its own process

    def call_logs(self, run_id: str, call_id: str) -> str | None:
        return None  # a task's output goes to the terminal of `flux run`

    def event_count(self, run_id: str) -> int:
        with self._read() as db:
            row = db.execute("SELECT count(*) FROM events WHERE run_id = ?", (run_id,)).fetchone()
        return int(row[0])

    def events(self, run_id: str, after: int, limit: int) -> list[EventRow]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, type, source_id, name, time, value FROM events "
                "WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?",
                (run_id, after, limit),
            ).fetchall()
        return [_event_row(r) for r in rows]

    def call_events(self, run_id: str, call_id: str) -> list[EventRow]:
        with self._read() as db:
            rows = db.execute(
                "SELECT id, type, source_id, name, time, value FROM events "
                "WHERE run_id = ? AND source_id = ? ORDER BY id",
                (run_id, call_id),
            ).fetchall()
        return [_event_row(r) for r in rows]


_IN_OUTCOMES = ",".join(f"'{t}'" for t in OUTCOME_TYPES)
_IN_MOVE_TYPES = ",".join(f"'{t}'" for t in MOVE_TYPES)
_ROWS_PER_QUERY = 500

# Every call's outcome and marks, then per task name and outcome: the rules of
# flux.ui.timeline.groups_of in SQL, so that a run of 50,000 calls is summed by
# SQLite rather than by building 50,000 bars. Stored errors are compact JSON
# written by Flux, where '"kind":"timeout"' cannot come from a message (its
# quotes would be escaped), and only events that carry errors are looked at.
# Durations are to the millisecond (julianday).
_GROUPS_SQL = """
WITH calls AS (
    SELECT
        name,
        min(time) AS start,
        max(CASE WHEN type IN ('TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED',
                               'TASK_RESUMED') THEN time END) AS finish,
        max(CASE type WHEN 'TASK_COMPLETED' THEN 'completed' WHEN 'TASK_FAILED' THEN 'failed'
                      WHEN 'TASK_CANCELLED' THEN 'cancelled' WHEN 'TASK_RESUMED' THEN 'resumed'
            END) AS outcome,
        max(type = 'TASK_PAUSED') AS paused,
        max(type = 'TASK_RETRY_STARTED') AS retried,
        max(type IN ('TASK_FAILED', 'TASK_RETRY_STARTED', 'TASK_FALLBACK_STARTED',
                     'TASK_ROLLBACK_STARTED')
            AND instr(value, '"kind":"timeout"') > 0) AS timeout,
        max(type = 'TASK_FALLBACK_STARTED') AS fallback,
        max(type = 'TASK_ROLLBACK_STARTED') AS rollback,
        min(id) AS first
    FROM events
    WHERE run_id = ? AND type LIKE 'TASK\\_%' ESCAPE '\\'
    GROUP BY source_id
)
SELECT
    name,
    coalesce(outcome, CASE WHEN paused THEN 'paused' ELSE 'running' END) AS status,
    count(*),
    sum(retried),
    sum(timeout),
    sum(fallback),
    sum(rollback),
    coalesce(sum((julianday(finish) - julianday(start)) * 86400.0), 0.0),
    coalesce(max((julianday(finish) - julianday(start)) * 86400.0), 0.0)
FROM calls
GROUP BY name, status
ORDER BY min(first)
"""


def _run_filter(query: RunQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.workflow:
        clauses.append("workflow = ?")
        params.append(query.workflow)
    if query.state:
        clauses.append("state = ?")
        params.append(query.state)
    if query.since is not None:
        # The store writes every time as UTC isoformat, so text order is time order.
        clauses.append("created >= ?")
        params.append(query.since.astimezone(dt.UTC).isoformat())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _run_row(row: tuple[Any, ...]) -> RunRow:
    run_id, workflow, source, state, created, updated, owner = row
    return RunRow(
        run_id,
        workflow,
        state,
        _time(created),
        _time(updated),
        interrupted=state in _UNFINISHED and not owner_is_alive(owner),
        source=_json(source) if isinstance(_json(source), dict) else {},
    )


def _event_row(row: tuple[Any, ...]) -> EventRow:
    i, t, s, n, tm, v = row
    return EventRow(i, t, s, n, _time(tm), _json(v))


def owner_is_alive(owner: str | None) -> bool:
    """Whether the process recorded as executing a run (``host:pid``) still lives.

    The same test as ``flux resume`` makes, done here on the read-only row.
    """
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's process: assume it lives
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _maybe_time(text: str | None) -> dt.datetime | None:
    return None if text is None else _time(text)


def _time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _json(text: str | None) -> Any:
    """A stored value as plain JSON; text that is not JSON is shown as it is."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
