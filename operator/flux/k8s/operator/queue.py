"""The work queue: when a run's pass runs, and when it runs again.

Passes of one run never overlap: an event that arrives during one marks the
run for one more pass. A pass returns when it wants to be woken (a deadline, a
retry's backoff, a driver's start); a backstop pass catches any wake-up lost to
a restart or a failed pass. A pass whose view turned out stale (a JSON-patch
test failed, the run changed under a write) runs once more on a fresh read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flux.k8s import metrics
from flux.k8s.kube import Conflict, Invalid
from flux.k8s.operator.cache import Key

# Every deadline is also a scheduled wake-up; this pass only catches those lost
# to a restart or a failed pass.
BACKSTOP_SECONDS = 60.0
# A timer fires this long after the time it was set for, so the pass finds it past.
WAKE_SLACK_SECONDS = 0.05


@dataclass(frozen=True)
class Requeue:
    """What a pass that carried out its plan asks of the queue: another pass at
    ``at``, or (None) only when an event comes."""

    at: dt.datetime | None


# One pass of a run: None when it had nothing to carry out (the run is gone or
# going), which leaves any wake-up already set as it is.
Pass = Callable[[Key], Awaitable[Requeue | None]]


class WorkQueue:
    def __init__(
        self,
        run_pass: Pass,
        *,
        stale: Callable[[Key], None],
        finished: Callable[[Key], bool],
    ) -> None:
        """``stale`` drops a run's view after a stale write; ``finished`` tells the
        runs the backstop may leave alone."""
        self._pass = run_pass
        self._stale = stale
        self._finished = finished
        self._locks: dict[Key, asyncio.Lock] = {}
        self._again: set[Key] = set()
        self._wakers: dict[Key, asyncio.TimerHandle] = {}
        # Runs not known to be finished, with when a pass last started (backstop).
        self._unfinished: dict[Key, float] = {}
        self._backstops: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def reconcile(self, namespace: str, name: str) -> None:
        """A pass of the run now, or one more after the one running."""
        if self._stopped:
            return
        key = (namespace, name)
        if not self._finished(key):
            self._unfinished[key] = time.monotonic()
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            self._again.add(key)
            return
        async with lock:
            stale = False
            while True:
                self._again.discard(key)
                started, result = time.monotonic(), "error"
                try:
                    requeue = await self._pass(key)
                    if requeue is not None:
                        self._wake_at(key, requeue.at)
                    result = "ok"
                except (Conflict, Invalid):
                    # A JSON-patch test failed or the run changed under a write: the
                    # view was stale. Once, read it fresh and retry. Any 422, not only
                    # a failed test: removing a record a stale view still showed is one too.
                    if stale:
                        raise
                    stale = True
                    self._stale(key)
                    self._again.add(key)
                finally:
                    elapsed = time.monotonic() - started
                    metrics.RECONCILE_DURATION.labels(result).observe(elapsed)
                if key not in self._again:
                    return

    def stop(self) -> None:
        """No pass starts from now on (passes in flight finish): the operator is
        handing over to another replica, which must be the only one to act."""
        self._stopped = True
        for waker in self._wakers.values():
            waker.cancel()
        self._wakers.clear()
        for task in self._backstops:
            task.cancel()

    def finished(self, key: Key) -> None:
        """The run is finished: the backstop leaves it alone."""
        self._unfinished.pop(key, None)

    def forget(self, key: Key) -> None:
        self._locks.pop(key, None)
        self._unfinished.pop(key, None)
        waker = self._wakers.pop(key, None)
        if waker is not None:
            waker.cancel()

    async def backstop(self, interval: float = BACKSTOP_SECONDS) -> None:
        """Reconcile each unfinished run at least every ``interval`` seconds.

        Timers derive from status, so this catches any wake-up lost to a restart
        or a failed pass. Not a kopf timer: those keep per-object state and
        touch every run with an annotation patch, a write per run and pass.
        """
        while True:
            await asyncio.sleep(interval / 3)
            now = time.monotonic()
            for namespace, name in [k for k, t in self._unfinished.items() if now - t >= interval]:
                task = asyncio.create_task(self.reconcile(namespace, name))
                self._backstops.add(task)
                task.add_done_callback(self._backstops.discard)

    def _wake_at(self, key: Key, when: dt.datetime | None) -> None:
        old = self._wakers.pop(key, None)
        if old is not None:
            old.cancel()
        if when is None:
            return
        delay = max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0) + WAKE_SLACK_SECONDS
        loop = asyncio.get_running_loop()
        namespace, name = key
        self._wakers[key] = loop.call_later(
            delay, lambda: asyncio.ensure_future(self.reconcile(namespace, name))
        )
