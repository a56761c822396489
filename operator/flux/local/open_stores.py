"""Run stores kept open between the embedded executor's calls, one caller at a time.

Opening a store costs a connection, its PRAGMAs and the schema script, and
closing the last connection to a WAL database checkpoints the log into the
database file: together most of a small ``wf.run`` (issue 17). So ``wf.run``
borrows an open store and gives it back for the next call.

What a fresh ``Store()`` guaranteed still holds for a borrowed one:

* **One caller at a time.** A connection carries one transaction, so a store is
  lent to one caller until it is given back; a caller that finds none idle
  (another thread, a nested run) opens its own.
* **The store ``FLUX_HOME`` names now.** A store is lent only while
  ``FLUX_HOME`` and ``FLUX_SQLITE_SYNC`` are what they were when it was opened,
  and while its database file and write-ahead log are the files it opened: a
  removed or replaced file (a user who cleared FLUX_HOME) must not receive
  commits that nobody else can see.
* **Nothing crosses fork.** SQLite forbids using a connection in a child
  process; a child also never closes its parent's connections (closing may
  checkpoint and remove the log the parent writes), it opens its own.
* **A clean connection.** A store whose caller raised, or that is still inside
  a transaction, is closed rather than lent again.
* **The files as before at exit.** Idle stores are closed when the interpreter
  exits, so the log is checkpointed into ``flux.db`` and removed as it was when
  each call closed its own store.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flux.local.store import Store, flux_home, sync_mode

# Enough for a few threads running workflows side by side; more are opened and closed.
_MAX_IDLE = 4

_FileId = tuple[int, int] | None


@dataclass(frozen=True)
class _Lent:
    store: Store
    key: tuple[str, str]  # absolute database path, synchronous mode
    files: tuple[_FileId, _FileId]  # the database and its log, as opened
    pid: int


def _file_id(path: str) -> _FileId:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def _files(path: str) -> tuple[_FileId, _FileId]:
    return _file_id(path), _file_id(path + "-wal")


def _current_key() -> tuple[str, str]:
    # sync_mode() refuses a bad FLUX_SQLITE_SYNC exactly as Store() does.
    return os.path.abspath(flux_home() / "flux.db"), sync_mode()


class _OpenStores:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Lent] = []
        # A parent's connections, inherited by fork: referenced so that the child
        # never finalizes (closes) them.
        self._inherited: list[_Lent] = []

    def take(self) -> _Lent:
        key = _current_key()
        stale: list[_Lent] = []
        found: _Lent | None = None
        with self._lock:
            while self._idle:
                lent = self._idle.pop()
                if lent.key == key and lent.files == _files(key[0]):
                    found = lent
                    break
                stale.append(lent)
            if found is None:
                # Another FLUX_HOME, or files replaced: none of the rest is current either.
                stale += self._idle
                self._idle = []
        for lent in stale:
            lent.store.close()
        if found is not None:
            return found
        store = Store()
        return _Lent(store, key, _files(key[0]), os.getpid())

    def give_back(self, lent: _Lent, reusable: bool) -> None:
        if lent.pid != os.getpid():
            with self._lock:
                self._inherited.append(lent)
            return
        if reusable and not lent.store.in_transaction:
            with self._lock:
                if len(self._idle) < _MAX_IDLE:
                    self._idle.append(lent)
                    return
        lent.store.close()

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for lent in idle:
            if lent.pid == os.getpid():
                lent.store.close()

    def after_fork_in_child(self) -> None:
        # The lock may have been held by another thread of the parent: replace it.
        self._lock = threading.Lock()
        self._inherited += self._idle
        self._idle = []


_OPEN_STORES = _OpenStores()
os.register_at_fork(after_in_child=_OPEN_STORES.after_fork_in_child)
atexit.register(_OPEN_STORES.close_idle)


@contextmanager
def borrowed_store() -> Iterator[Store]:
    """An open store of the current FLUX_HOME, for this caller alone until the block ends."""
    lent = _OPEN_STORES.take()
    reusable = False
    try:
        yield lent.store
        reusable = True
    finally:
        _OPEN_STORES.give_back(lent, reusable)


def close_idle() -> None:
    """Close the stores kept open (the interpreter does this at exit)."""
    _OPEN_STORES.close_idle()
