"""Durable run state in SQLite: runs, their event histories, and stored secrets.

Every batch of events is committed in its own transaction before the run takes
its next step. WAL mode with ``synchronous=NORMAL`` makes a commit survive the
process being killed at any point (the guarantee the embedded engine needs);
set ``FLUX_SQLITE_SYNC=FULL`` to also survive power loss, at an fsync per step.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux.events import ExecutionEvent, ExecutionState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    id INTEGER NOT NULL,
    type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    name TEXT NOT NULL,
    time TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    updated TEXT NOT NULL
);
"""


# Stay well below SQLite's limit of bound variables per statement.
_ROWS_PER_STATEMENT = 100


def flux_home() -> Path:
    return Path(os.environ.get("FLUX_HOME") or Path.cwd() / ".flux")


@dataclass(frozen=True)
class RunRecord:
    id: str
    workflow: str
    source: dict[str, Any]
    state: ExecutionState
    created: dt.datetime
    updated: dt.datetime


class Keep(enum.Enum):
    """What :meth:`Store.append` leaves as recorded unless told otherwise."""

    OWNER = "owner"


class RunNotFound(LookupError):
    pass


class StoreError(Exception):
    """The store cannot be opened or used as it stands (a setting, the file, its folder)."""


def is_broken_database(exc: BaseException) -> bool:
    """True for errors that say the database file or its folder is unusable.

    Not sqlite3.ProgrammingError, IntegrityError and the like: those are bugs
    here, not a broken state a user can repair.
    """
    return type(exc) in (sqlite3.DatabaseError, sqlite3.OperationalError)


def sync_mode() -> str:
    sync = os.environ.get("FLUX_SQLITE_SYNC", "NORMAL").upper()
    if sync not in ("NORMAL", "FULL"):
        raise StoreError(
            f"FLUX_SQLITE_SYNC must be NORMAL or FULL, not {os.environ['FLUX_SQLITE_SYNC']!r}"
        )
    return sync


class Store:
    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else flux_home() / "flux.db"
        sync = sync_mode()  # before anything is created
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot use {self.path.parent} as FLUX_HOME: {exc.strerror or exc}"
            ) from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the run store {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={sync}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            if not is_broken_database(exc):
                raise
            raise StoreError(f"cannot use the run store {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    @property
    def in_transaction(self) -> bool:
        """True between a BEGIN and its COMMIT or ROLLBACK."""
        return self._db.in_transaction

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- runs

    def create_run(
        self, run_id: str, workflow: str, source: dict[str, Any], first: ExecutionEvent
    ) -> None:
        """Register a run with its first event: both are stored, or neither."""
        now = _now()
        row = _event_row(run_id, first)  # fails before anything is written
        with self._transaction():
            self._db.execute(
                "INSERT INTO runs (id, workflow, source, state, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, workflow, json.dumps(source), ExecutionState.CREATED.value, now, now),
            )
            self._db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def append(
        self,
        run_id: str,
        events: Iterable[ExecutionEvent],
        state: ExecutionState | None = None,
        owner: str | Keep | None = Keep.OWNER,
    ) -> None:
        """Commit a batch of events, and the run's new state and owner if given, atomically.

        ``owner``: the process now executing the run, None when none is, or
        ``Keep.OWNER`` to leave it as recorded.
        """
        rows = [_event_row(run_id, e) for e in events]
        if state is None and owner is Keep.OWNER and 0 < len(rows) <= _ROWS_PER_STATEMENT:
            # One statement is one implicit transaction: the cheapest durable commit.
            placeholders = ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            flat = [field for row in rows for field in row]
            self._db.execute(f"INSERT INTO events VALUES {placeholders}", flat)
            return
        with self._transaction():
            if rows:
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            changes: dict[str, Any] = {}
            if state is not None:
                changes.update(state=state.value, updated=_now())
            if owner is not Keep.OWNER:
                changes["owner"] = owner
            if changes:
                columns = ", ".join(f"{name} = ?" for name in changes)  # names from above only
                self._db.execute(
                    f"UPDATE runs SET {columns} WHERE id = ?", (*changes.values(), run_id)
                )

    def get_run(self, run_id: str) -> RunRecord:
        row = self._db.execute(
            "SELECT id, workflow, source, state, created, updated FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r} in {self.path}")
        return _record(row)

    def events(self, run_id: str) -> list[ExecutionEvent]:
        rows = self._db.execute(
            "SELECT type, source_id, name, time, value, id FROM events "
            "WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall()
        return [
            ExecutionEvent.from_dict(
                {
                    "type": t,
                    "source_id": s,
                    "name": n,
                    "time": tm,
                    "value": json.loads(v) if v is not None else None,
                    "id": i,
                }
            )
            for t, s, n, tm, v, i in rows
        ]

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self._db.execute(
            "SELECT id, workflow, source, state, created, updated FROM runs "
            "ORDER BY created DESC, id LIMIT ?",
            (limit,),
        ).fetchall()
        return [_record(r) for r in rows]

    def set_owner(self, run_id: str, owner: str | None) -> None:
        """Record which process is executing the run (None when no process is)."""
        # One statement is one implicit transaction.
        self._db.execute("UPDATE runs SET owner = ? WHERE id = ?", (owner, run_id))

    def owner(self, run_id: str) -> str | None:
        row = self._db.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def request_cancel(self, run_id: str) -> None:
        self.get_run(run_id)
        with self._transaction():
            self._db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        row = self._db.execute(
            "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        return bool(row and row[0])

    # -------------------------------------------------------------- secrets

    def put_secret(self, name: str, ciphertext: bytes) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO secrets (name, value, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE "
                "SET value = excluded.value, updated = excluded.updated",
                (name, ciphertext, _now()),
            )

    def get_secret(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def secret_names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM secrets ORDER BY name")]

    def delete_secret(self, name: str) -> bool:
        with self._transaction():
            cursor = self._db.execute("DELETE FROM secrets WHERE name = ?", (name,))
        return cursor.rowcount > 0

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _event_row(run_id: str, e: ExecutionEvent) -> tuple[Any, ...]:
    return (
        run_id,
        e.id,
        e.type.value,
        e.source_id,
        e.name,
        e.time.isoformat(),
        json.dumps(e.value, separators=(",", ":"), ensure_ascii=False),
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, workflow, source, state, created, updated = row
    return RunRecord(
        run_id,
        workflow,
        json.loads(source),
        ExecutionState(state),
        dt.datetime.fromisoformat(created),
        dt.datetime.fromisoformat(updated),
    )
