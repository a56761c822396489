"""Carrying out a pass's :class:`~flux.k8s.reconcile.Plan`: pods created and
deleted, large outputs and settled task records moved to ConfigMaps, the status
patch, Events.

Finished task pods are cleared (their log tails kept, then the pods deleted)
after the pass, in the background: their outcome is in the status the pass
wrote, and the run's next step (the driver records its next call, the next
pass creates that pod) must not wait for two or three more requests. From the
status write on, the cache no longer counts them among the run's pods; a
deletion that fails puts the pod back there, and the next pass plans it again.

Every body is raw JSON (see :mod:`flux.k8s.kube.http`): decoding responses into
the client's model classes, dates and all, cost more than a pod's deletion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Sequence

from flux.k8s import archive
from flux.k8s.kube import CONFIGMAPS, PODS, RUNS, Conflict, Kube, KubeError, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.kube.objects import create_or_replace
from flux.k8s.operator.background import BackgroundTasks
from flux.k8s.operator.cache import Cache
from flux.k8s.operator.events import BackgroundEvents
from flux.k8s.operator.logs import LogKeeper, PodLogs
from flux.k8s.operator.shared_drivers import SharedDrivers
from flux.k8s.operator.status_patch import status_ops
from flux.k8s.reconcile import Plan

# Pod creations or deletions of one pass in flight at once.
API_CONCURRENCY = 16

log = logging.getLogger(__name__)


class PlanApplier:
    def __init__(
        self, kube: Kube, cache: Cache, shared_drivers: SharedDrivers, events: BackgroundEvents
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.shared_drivers = shared_drivers
        self.events = events
        self.task_logs = LogKeeper(kube)
        self.clearing = BackgroundTasks()

    async def apply(
        self,
        run: Body,
        plan: Plan,
        pods: Sequence[Body] = (),
        logs: PodLogs | None = None,
    ) -> None:
        """Carry out ``plan``; ``plan.wake_at`` then says when the run wants its next pass.

        ``pods`` are the run's pods the plan was made from: the logs of the task
        pods it deletes are kept first (``logs`` holds those the pass read already).
        """
        namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
        if plan.shared_driver is not None:
            # First: it counts as up from its creation on, for the passes of the
            # other runs meanwhile too (see SharedDrivers.ensure).
            plan.wake(await self.shared_drivers.ensure(plan.shared_driver))
        # Pods first: their names are deterministic, so a pod created by a
        # reconcile whose status patch then failed is found again, not doubled.
        await _bounded(self._create_pod(namespace, pod) for pod in plan.create)
        await self._move_out(run, plan)
        if plan.status:
            ops = status_ops(run.get("status"), plan.status)
            written = await self.kube.patch(RUNS, namespace, name, ops, status=True)
            self.cache.run_seen(written)
        if plan.delete:
            # After the status patch: a pass whose patch fails keeps nothing and
            # deletes nothing, and the next one reads the logs again.
            deleting = list(dict.fromkeys(plan.delete))
            for pod_name in deleting:
                self.cache.deleting(namespace, pod_name)
            logs = logs or PodLogs(self.kube, namespace)
            self.clearing.start(self._clear(run, list(pods), deleting, logs))
        for kind, reason, message in plan.events:
            self.events.post(run, kind, reason, message)

    async def _create_pod(self, namespace: str, pod: Body) -> None:
        try:
            created = await self.kube.create(PODS, namespace, pod)
        except Conflict:
            return
        self.cache.pod_seen("ADDED", created)

    async def _clear(
        self, run: Body, pods: Sequence[Body], deleting: Sequence[str], logs: PodLogs
    ) -> None:
        """Keep the log tails of the pods ``deleting`` names, then delete them."""
        if pods:
            await self.task_logs.keep(run, pods, deleting, logs)
        namespace = run["metadata"]["namespace"]
        await _bounded(self._delete_pod(namespace, name) for name in deleting)

    async def _delete_pod(self, namespace: str, name: str) -> None:
        try:
            await self.kube.delete(PODS, namespace, name, grace_period_seconds=0)
        except NotFound:
            self.cache.not_deleted(namespace, name, gone=True)
        except KubeError as exc:
            # Back among the run's pods: the next pass (an event, or the
            # backstop) plans the deletion again.
            self.cache.not_deleted(namespace, name, gone=False)
            log.warning("task pod %s/%s not deleted: %s", namespace, name, exc)

    async def _move_out(self, run: Body, plan: Plan) -> None:
        """Keep the run in budget: store large outputs and settled records in ConfigMaps."""
        name, status = run["metadata"]["name"], run.get("status") or {}
        for record in plan.status.get("tasks") or []:
            output = record.get("output")
            if output is None or archive.encoded_size(output) <= archive.INLINE_VALUE_BYTES:
                continue
            stored = await self._put_configmap(
                run,
                archive.value_name(name, record["callId"]),
                archive.VALUE,
                archive.pack(output),
            )
            record["outputRef"] = archive.entry(stored, 1)
            record["output"] = None
        if not plan.archive_tasks:
            return
        entries = list(status.get("taskArchive") or [])
        for payload, count in archive.split(plan.archive_tasks):
            chunk = archive.chunk_name(name, archive.TASKS, len(entries))
            stored = await self._put_configmap(run, chunk, archive.TASKS, payload)
            entries.append(archive.entry(stored, count))
        plan.status["taskArchive"] = entries
        plan.status.setdefault("tasks", status.get("tasks") or [])

    async def _put_configmap(self, run: Body, name: str, kind: str, payload: bytes) -> Body:
        manifest = archive.configmap(run, name, kind, payload)
        return await create_or_replace(self.kube, CONFIGMAPS, manifest)


async def _bounded(calls: Iterable[Awaitable[None]], limit: int = API_CONCURRENCY) -> None:
    """Await ``calls`` with at most ``limit`` in flight (a fan-out starts hundreds of pods)."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[None]) -> None:
        async with gate:
            await call

    await asyncio.gather(*(one(c) for c in calls))
