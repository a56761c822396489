"""One driver pod for all the runs of a Workflow (``spec.driverMode: Shared``).

A per-run driver costs a pod start (a Python start-up, imports, a replay) for
each run; at hundreds of runs a minute that, not the work, is what the machine
does. The shared driver is the same :class:`~flux.runtime.driver.Driver` logic
held in one process for every active run of one Workflow, the way a Temporal
worker serves many workflow executions: it lists and watches the runs the
operator marked shared, replays each once, and advances each as its status
changes. Runs that finish, pause or go quiet are let go (replay makes taking
them up again safe); the pod exits when it has held no run for its linger time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from flux.engine.instance import WorkflowInstance
from flux.k8s import api
from flux.k8s.history import FINAL_PHASES
from flux.runtime.driver import WORKFLOW_NAME_ENV, Driver, utc_now
from flux.workflow import Workflow

log = logging.getLogger("flux.shared_driver")
__all__ = ["WORKFLOW_NAME_ENV", "SharedDriver", "serves"]
# The watch is restarted this often, so a silently broken connection cannot last.
WATCH_SECONDS = 240


def serves(body: dict[str, Any]) -> bool:
    """Whether a shared driver should hold this run now."""
    status = body.get("status") or {}
    if not (status.get("driver") or {}).get("shared"):
        return False  # per-run driver, or not yet claimed by the operator
    if body["metadata"].get("deletionTimestamp") or status.get("phase") in FINAL_PHASES:
        return False
    return not (status.get("phase") == "Paused" and status.get("resume") is None)


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


def _older(version: str, than: str) -> bool:
    """Whether ``version`` precedes ``than``. Kubernetes calls resourceVersions opaque,
    but every etcd-backed API server issues increasing integers; the watch delivers
    events in that order, so an older one is a state our own write already includes."""
    try:
        return int(version) < int(than)
    except ValueError:
        return False


class SharedDriver:
    def __init__(
        self,
        runs: api.Runs,
        configmaps: api.ConfigMaps,
        namespace: str,
        workflow_name: str,
        workflow: Workflow[Any],
        linger: float = 30.0,
    ):
        self.runs = runs
        self.configmaps = configmaps
        self.namespace = namespace
        self.workflow_name = workflow_name
        self.workflow = workflow
        self.linger = linger
        self.held: dict[str, _Held] = {}
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def serve(self) -> int:
        watcher = asyncio.create_task(self._watch())
        try:
            empty_since = utc_now()
            while True:
                if self.held:
                    empty_since = utc_now()
                elif (utc_now() - empty_since).total_seconds() >= self.linger:
                    return 0
                timeout = self._next_timeout(empty_since)
                try:
                    kind, body = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    await self._wake_due()
                    continue
                if watcher.done():
                    watcher.result()  # a watch that died for good ends the driver
                await self.consider(kind, body)
        finally:
            watcher.cancel()

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
            if _older(body["metadata"]["resourceVersion"], held.awaiting):
                return
            held.awaiting = None
        if kind == "DELETED" or not serves(body):
            self.held.pop(name, None)
            return
        if held is None:
            driver = Driver(
                self.runs, self.namespace, name, self.workflow, self.linger, self.configmaps
            )
            try:
                instance = await driver.begin(body)
            except ApiException as exc:
                log.warning("run %s: %s; replaying it from the next event", name, exc.reason)
                return
            if instance is None:
                return
            held = _Held(driver, instance, body, utc_now())
            self.held[name] = held
        await self._advance(name, held, body)

    async def _advance(self, name: str, held: _Held, body: dict[str, Any]) -> None:
        try:
            written, changed = await held.driver.advance(held.instance, body)
        except ApiException as exc:
            # Another writer got there first or the run went away: let it go and
            # take it up again, replayed, from the next event.
            log.warning("run %s: %s; replaying it from the next event", name, exc.reason)
            self.held.pop(name, None)
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

    async def _wake_due(self) -> None:
        now = utc_now()
        for name, held in list(self.held.items()):
            if held.wake_at is not None and held.wake_at <= now:
                await self._advance(name, held, held.body)

    async def _watch(self) -> None:
        selector = f"spec.workflowRef.name={self.workflow_name}"
        while True:
            listed = await self.runs.custom.list_namespaced_custom_object(
                api.GROUP, api.VERSION, self.namespace, api.RUNS, field_selector=selector
            )
            # Runs held from before a relist are refreshed by what the list shows.
            for held in self.held.values():
                held.awaiting = None
            for item in listed.get("items") or []:
                await self._queue.put(("LISTED", item))
            version = listed["metadata"]["resourceVersion"]
            try:
                await self._follow(selector, version)
            except ApiException as exc:
                if exc.status != 410:
                    raise
                # Expired resourceVersion: list again.

    async def _follow(self, selector: str, version: str) -> None:
        stream = watch.Watch()
        async with stream.stream(
            self.runs.custom.list_namespaced_custom_object,
            api.GROUP,
            api.VERSION,
            self.namespace,
            api.RUNS,
            field_selector=selector,
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
        ) as events:
            async for event in events:
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    await self._queue.put((event["type"], event["object"]))
                elif event["type"] == "ERROR":
                    return  # e.g. an expired resourceVersion: list again
