"""One driver pod for all the runs of a Workflow (``spec.driverMode: Shared``).

A per-run driver costs a pod start (a Python start-up, imports, a replay) for
each run; at hundreds of runs a minute that, not the work, is what the machine
does. The shared driver is the same :class:`~flux.runtime.driver.Driver` logic
held in one process for every active run of one Workflow, the way a Temporal
worker serves many workflow executions: it lists and watches the Workflow's
runs, claims the new ones (its first write, which needs a run without status,
says the run is shared), replays each once, and advances each as its status
changes. Runs are advanced concurrently, each by one task at a time. Runs that
finish, pause or go quiet are let go (replay makes taking them up again safe);
the pod exits when it has held no run for its linger time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from flux.engine.instance import WorkflowInstance
from flux.events import utc_now
from flux.k8s.kube import RUNS, Kube, KubeError, NotFound
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.versions import newer
from flux.k8s.kube.watch import Listed, follow
from flux.k8s.run_conditions import cancel_requested
from flux.k8s.states import FINAL_PHASES, Phase
from flux.runtime.driver import Driver
from flux.workflow import Workflow

log = logging.getLogger("flux.shared_driver")
__all__ = ["SharedDriver", "serves"]
# Runs advanced at once: each advance waits on the API server, not on this process.
CONCURRENCY = 32


def serves(body: dict[str, Any], revision: str | None = None) -> bool:
    """Whether a shared driver (of code ``revision``) should hold this run now.

    With a revision, only runs that recorded it: the operator records a run's
    revision before anyone drives it, so this driver never claims a new run
    itself (it may be an older revision's, lingering after an edit).
    """
    status = body.get("status") or {}
    if revision is not None and status.get("revision") != revision:
        return False  # not started yet, or another revision's
    if not status:
        return not body["metadata"].get("deletionTimestamp")  # new: ours to claim
    if not (status.get("driver") or {}).get("shared"):
        return False  # a per-run driver's
    if body["metadata"].get("deletionTimestamp") or status.get("phase") in FINAL_PHASES:
        return False
    waiting = status.get("resume") is None and not cancel_requested(body)
    return not (status.get("phase") == Phase.PAUSED and waiting)


@dataclass
class _Held:
    driver: Driver
    instance: WorkflowInstance
    body: dict[str, Any]
    idle_since: dt.datetime
    wake_at: dt.datetime | None = None
    # resourceVersion of our own last write: watch events older than it are skipped,
    # as the body we hold already includes them.
    awaiting: str | None = None


class SharedDriver:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        workflow_name: str,
        workflow: Workflow[Any],
        linger: float = 30.0,
        events: EventRecorder | None = None,
        revision: str | None = None,
    ):
        self.kube = kube
        # The code revision this driver runs; None (tests, older operators) serves any.
        self.revision = revision
        self.namespace = namespace
        self.workflow_name = workflow_name
        self.workflow = workflow
        self.linger = linger
        self.events = events
        self.held: dict[str, _Held] = {}
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        # Per run: the newest body not yet considered, and the task considering it.
        self._latest: dict[str, tuple[str, dict[str, Any]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._refetches: set[asyncio.Task[None]] = set()
        # Seconds before a run let go after a refused write is read again.
        self.retry_delay = 1.0
        self._failed: BaseException | None = None

    async def serve(self) -> int:
        watcher = asyncio.create_task(self._watch())
        try:
            empty_since = utc_now()
            while True:
                if self._failed is not None:
                    raise self._failed
                if self.held or self._workers or self._refetches:
                    empty_since = utc_now()
                elif (utc_now() - empty_since).total_seconds() >= self.linger:
                    return 0
                timeout = self._next_timeout(empty_since)
                try:
                    kind, body = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    self._wake_due()
                    continue
                if self._failed is not None:
                    raise self._failed
                if watcher.done():
                    watcher.result()  # a watch that died for good ends the driver
                self.offer(kind, body)
        finally:
            watcher.cancel()
            for worker in self._workers.values():
                worker.cancel()

    def offer(self, kind: str, body: dict[str, Any]) -> None:
        """Have ``body`` considered; a body not yet taken up is replaced by a newer one."""
        name = body["metadata"]["name"]
        self._latest[name] = (kind, body)
        if name not in self._workers:
            self._workers[name] = asyncio.create_task(self._work(name))

    async def drain(self) -> None:
        """Wait until every offered body has been considered (tests)."""
        while self._workers:
            await asyncio.gather(*self._workers.values())
        if self._failed is not None:
            raise self._failed

    async def _work(self, name: str) -> None:
        try:
            while name in self._latest:
                kind, body = self._latest.pop(name)
                async with self._gate:
                    await self.consider(kind, body)
        except Exception as exc:  # a bug, not the API: end the driver, loudly
            log.exception("run %s", name)
            self._failed = exc
            self._queue.put_nowait(("FAILED", {}))  # wakes serve(), which raises it
        finally:
            del self._workers[name]

    def _next_timeout(self, empty_since: dt.datetime) -> float:
        now = utc_now()
        limit = self.linger - (now - empty_since).total_seconds() if not self.held else self.linger
        wakes = [h.wake_at for h in self.held.values() if h.wake_at is not None]
        if wakes:
            limit = min(limit, (min(wakes) - now).total_seconds())
        return max(limit, 0.0)

    async def consider(self, kind: str, body: dict[str, Any]) -> None:
        """A run as the watch (or the initial list) shows it."""
        name = body["metadata"]["name"]
        held = self.held.get(name)
        if held is not None and held.awaiting is not None:
            version = body["metadata"]["resourceVersion"]
            if version != held.awaiting and not newer(version, held.awaiting):
                return
            held.awaiting = None
        if kind == "DELETED" or not serves(body, self.revision):
            self.held.pop(name, None)
            return
        if held is None:
            driver = Driver(
                self.kube,
                self.namespace,
                name,
                self.workflow,
                self.linger,
                events=self.events,
                shared=True,
            )
            try:
                instance = await driver.begin(body)
            except KubeError as exc:
                self._let_go(name, exc)
                return
            if instance is None:
                return
            held = _Held(driver, instance, body, utc_now())
            self.held[name] = held
        await self._advance(name, held, body)

    async def _advance(self, name: str, held: _Held, body: dict[str, Any]) -> None:
        try:
            written, changed = await held.driver.advance(held.instance, body)
        except KubeError as exc:
            self._let_go(name, exc)
            return
        version = written["metadata"]["resourceVersion"]
        if version != body["metadata"]["resourceVersion"]:
            held.awaiting = version
        held.body = written
        if changed:
            held.idle_since = utc_now()
        wait = held.driver.next_wait(held.instance, held.idle_since)
        if wait is None:
            self.held.pop(name, None)
        else:
            held.wake_at = utc_now() + dt.timedelta(seconds=wait)

    def _let_go(self, name: str, exc: KubeError) -> None:
        """Another writer got there first (a failed JSON-patch test, a conflict) or
        the run went away: let it go and take it up again, replayed, from the run
        as it is now. Not from the next watch event: there may be none."""
        log.warning("run %s: %s; taking it up again as it is now", name, exc)
        self.held.pop(name, None)
        if not isinstance(exc, NotFound):
            task = asyncio.create_task(self._refetch(name))
            self._refetches.add(task)
            task.add_done_callback(self._refetches.discard)

    async def _refetch(self, name: str) -> None:
        await asyncio.sleep(self.retry_delay)
        try:
            body = await self.kube.get(RUNS, self.namespace, name)
        except KubeError as exc:
            log.warning("run %s: %s; waiting for its next event", name, exc)
            return
        self._queue.put_nowait(("REFETCHED", body))

    def _wake_due(self) -> None:
        now = utc_now()
        for name, held in list(self.held.items()):
            if held.wake_at is not None and held.wake_at <= now and name not in self._latest:
                held.wake_at = None
                self.offer("WAKE", held.body)

    def relisted(self, items: list[dict[str, Any]]) -> None:
        """Runs as a (re)list shows them, queued behind the watch events before it.

        A list can show a run older than a write of ours still in flight (our
        claim of it, say): ``awaiting`` skips those as it skips older watch events.
        """
        for item in items:
            self._queue.put_nowait(("LISTED", item))

    async def _watch(self) -> None:
        changes = follow(
            self.kube,
            RUNS,
            self.namespace,
            field_selector=f"spec.workflowRef.name={self.workflow_name}",
        )
        async for change in changes:
            if isinstance(change, Listed):
                self.relisted(change.items)
            elif change["type"] in ("ADDED", "MODIFIED", "DELETED"):
                await self._queue.put((change["type"], change["object"]))
