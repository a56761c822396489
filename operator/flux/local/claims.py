"""Which process drives a run: an exclusive OS lock per run, held while it executes.

A claim is an ``flock(2)`` exclusive lock on a file in ``<db>.locks/`` named
after a hash of the run id (run ids come from users, so they never name a
path). The kernel drops the lock when its process exits in any way, SIGKILL
included, so a crashed owner never blocks its run and a reused pid can never
pass for a live owner, which a pid recorded in the database could. ``flock``
locks belong to an open file, not a process, so two claims in one process
exclude each other too. The lock file is removed on release; a claimer that
locked a file removed meanwhile notices (the path no longer names its inode)
and tries again on the new one.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

from flux.errors import FluxError

# A process probing a lock holds it shared for an instant; a claimer retries
# this long before it concludes the run has an owner.
_CLAIM_PATIENCE_SECONDS = 0.5
_RETRY_SECONDS = 0.01


class RunBusyError(FluxError):
    """Another live process is executing the run; only one process drives a run."""

    def __init__(self, run_id: str, owner: str | None):
        self.run_id = run_id
        self.owner = owner
        where = f"process {owner}" if owner else "another process"
        super().__init__(
            f"run {run_id} is being executed by {where}; wait for it to finish "
            f"or stop it with: flux cancel {run_id}"
        )


def lock_path(db_path: Path, run_id: str) -> Path:
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return db_path.with_name(db_path.name + ".locks") / f"{digest}.lock"


def acquire(path: Path) -> int | None:
    """Lock ``path`` exclusively; the open descriptor, or None when another holds it."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    deadline = time.monotonic() + _CLAIM_PATIENCE_SECONDS
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(_RETRY_SECONDS)
            continue
        except BaseException:
            os.close(fd)
            raise
        if _still_named(path, fd):
            return fd
        os.close(fd)  # its holder removed it while we waited: lock the new file


def release(path: Path, fd: int) -> None:
    # Unlink while still holding the lock, so nobody can lock the old file as current.
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """True when some process (this one included) holds the lock right now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock taken to probe
    return False


def _still_named(path: Path, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
