"""Deleting finished runs once they expire, at a steady rate.

A pass tells :class:`Expiry` when its run expires (:func:`flux.k8s.retention.expires_at`);
one task sleeps until the earliest expiry and deletes, spending a token of a
:class:`~flux.k8s.retention.TokenBucket` per deletion, so a thousand runs that
expire together are deleted at ``FLUX_RETENTION_DELETES_PER_SECOND``, not in a
burst of writes. Deleting a run is one request: the garbage collector removes
its pods and ConfigMaps, which name it as their owner. Expiry times live only
here: after a restart, the passes of the runs listed at start schedule them
again, and those long expired go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import logging
import time

from flux.k8s import metrics
from flux.k8s.kube import RUNS, Kube, KubeError, NotFound
from flux.k8s.operator.cache import Key
from flux.k8s.retention import TokenBucket

log = logging.getLogger("flux.operator")

# After a failed deletion (API server unreachable, forbidden), try again this much later.
RETRY_SECONDS = 10.0


class Expiry:
    def __init__(self, kube: Kube, deletes_per_second: float) -> None:
        self.kube = kube
        # A second's worth at most at once: the rate is also the largest burst.
        burst = max(1.0, deletes_per_second)
        self._bucket = TokenBucket.full(deletes_per_second, burst, time.monotonic())
        self._due: dict[Key, dt.datetime] = {}
        # (when, key), with entries left behind by a later schedule() skipped when popped.
        self._heap: list[tuple[dt.datetime, Key]] = []
        self._changed = asyncio.Event()

    def schedule(self, key: Key, at: dt.datetime | None) -> None:
        """The run expires at ``at``; None: it does not (it runs again, or is kept)."""
        if at is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, key))
        self._changed.set()

    def forget(self, key: Key) -> None:
        self._due.pop(key, None)

    def pending(self) -> int:
        return len(self._due)

    async def run(self) -> None:
        """Delete runs as they expire, until cancelled."""
        while True:
            key = await self._next_expired()
            wait = self._bucket.take(time.monotonic())
            while wait > 0:
                await asyncio.sleep(wait)
                wait = self._bucket.take(time.monotonic())
            # Rescheduled or forgotten while waiting for a token: the heap says again.
            if self._due.get(key) is None or self._due[key] > _now():
                continue
            del self._due[key]
            await self._delete(key)

    async def _next_expired(self) -> Key:
        """Sleep until the earliest scheduled run has expired, and return it."""
        while True:
            while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)  # superseded or forgotten
            self._changed.clear()
            if not self._heap:
                await self._changed.wait()
                continue
            at, key = self._heap[0]
            delay = (at - _now()).total_seconds()
            if delay <= 0:
                heapq.heappop(self._heap)
                return key
            # An earlier expiry scheduled meanwhile wakes us before ``delay``.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)

    async def _delete(self, key: Key) -> None:
        namespace, name = key
        try:
            await self.kube.delete(RUNS, namespace, name)
        except NotFound:
            return
        except KubeError as error:
            log.warning("could not delete expired run %s/%s (retrying): %s", namespace, name, error)
            self.schedule(key, _now() + dt.timedelta(seconds=RETRY_SECONDS))
            return
        metrics.RUNS_EXPIRED.inc()
        log.info("deleted run %s/%s: its ttlSecondsAfterFinished has passed", namespace, name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
