"""Work a pass starts and does not wait for, and waiting for it at shutdown.

Events (:mod:`.events`) and the clearing of finished task pods
(:mod:`.apply`) run this way: each follows a status write that already
recorded what it is about, so nothing the next pass decides depends on it,
and a pass that waited for it would hold up the run's next step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        # The work handles the failures it expects; anything else is a bug to see
        # in the log, not an "exception never retrieved" at exit.
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the work in flight, at most ``timeout`` seconds (at shutdown,
        and in tests)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._running:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(set(self._running), timeout=left)
