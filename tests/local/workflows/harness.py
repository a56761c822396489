"""Running the ``flux`` command in subprocesses against a private FLUX_HOME, for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flux.events import ExecutionEvent, ExecutionState
from flux.local.store import Store

WORKFLOWS = Path(__file__).parent
T = TypeVar("T")


def reference(file: str, name: str) -> str:
    return f"{WORKFLOWS / file}:{name}"


@dataclass
class Flux:
    home: Path
    cwd: Path

    def env(self) -> dict[str, str]:
        # Secrets and settings of whoever runs the tests must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLUX_")}
        return {**env, "FLUX_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flux.local.cli", *args]

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.env(),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """A ``flux`` process in the background, its stdout and stderr going to ``log``."""
        with log.open("wb") as out:
            return subprocess.Popen(
                self.command(*args),
                cwd=self.cwd,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def hold_claim(self, run_id: str) -> subprocess.Popen[str]:
        """A live process that owns ``run_id`` (holds its lock) but never executes it."""
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD_CLAIM, str(self.db), run_id],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        return holder

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def only_run_id(self) -> str:
        (run_id,) = self.stored_run_ids()
        return run_id

    # Read the store directly: cheaper than a `flux` process, and works while one writes.

    def stored_run_ids(self) -> list[str]:
        if not self.db.exists():
            return []
        with Store(self.db) as store:
            return [record.id for record in store.list_runs()]

    def events(self, run_id: str) -> list[ExecutionEvent]:
        with Store(self.db) as store:
            return store.events(run_id)

    def state(self, run_id: str) -> ExecutionState:
        with Store(self.db) as store:
            return store.get_run(run_id).state

    @property
    def db(self) -> Path:
        return self.home / "flux.db"


_HOLD_CLAIM = """
import sys, time
from pathlib import Path
from flux.local import claims
from flux.local.store import Store
db, run_id = Path(sys.argv[1]), sys.argv[2]
assert claims.acquire(claims.lock_path(db, run_id)) is not None
with Store(db) as store:
    store.set_owner(run_id, "holder")
print("held", flush=True)
time.sleep(120)
"""


def wait_for(condition: Callable[[], T], timeout: float = 30, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def trace_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
