"""The shared driver pods: one per Workflow in shared mode, started when a run
needs it, restarted with a backoff after failures, and the Workflow's runs
woken when it goes (so they start another or are claimed again)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable

from flux.k8s import metrics
from flux.k8s.kube import PODS, RUNS, Conflict, Kube, KubeError, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.labels import LABEL_REVISION, LABEL_WORKFLOW
from flux.k8s.operator.cache import Key
from flux.k8s.states import FINAL_PHASES, PodPhase

log = logging.getLogger("flux.operator")
# The longest wait before a failed shared driver is started again.
MAX_BACKOFF_SECONDS = 60
# How soon a run whose revision is not the up shared driver's looks again.
OTHER_REVISION_WAIT = dt.timedelta(seconds=5)


class SharedDrivers:
    """Which Workflows' shared drivers are up; both maps are rebuilt from pod
    events after a restart."""

    def __init__(self, kube: Kube, reconcile: Callable[[str, str], Awaitable[None]]) -> None:
        self.kube = kube
        self._reconcile = reconcile
        # Shared driver pods known to be up, by (namespace, workflow), and the
        # failures in a row of each Workflow's shared driver with the time before
        # which no new one starts.
        self._up: dict[Key, str] = {}
        self._failures: dict[Key, tuple[int, float]] = {}
        # The code revision of each Workflow's shared driver pod (one pod name per
        # Workflow, see pods.shared_driver_pod_name): it serves only runs of it.
        self._revisions: dict[Key, str] = {}

    def is_up(self, namespace: str, workflow: str) -> bool:
        return (namespace, workflow) in self._up

    async def ensure(self, pod: Body) -> dt.datetime | None:
        """Start the Workflow's shared driver unless it is up; when it must wait, until when."""
        meta = pod["metadata"]
        key = (meta["namespace"], meta["labels"][LABEL_WORKFLOW])
        wanted = meta["labels"].get(LABEL_REVISION, "")
        if key in self._up:
            if self._revisions.get(key, wanted) == wanted:
                return None
            # Another revision's driver is up: it exits when idle for its linger
            # time, and its pod's deletion wakes this run; look again meanwhile.
            return dt.datetime.now(dt.UTC) + OTHER_REVISION_WAIT
        failures, not_before = self._failures.get(key, (0, 0.0))
        if time.time() < not_before:
            return dt.datetime.fromtimestamp(not_before, dt.UTC)
        # Up from now on, for the passes running meanwhile too: a burst of new runs
        # is left to the driver's claims, not each written as Pending first.
        self._up[key] = meta["name"]
        self._revisions[key] = wanted
        try:
            await self.kube.create(PODS, meta["namespace"], pod)
            if failures:
                metrics.DRIVER_RESTARTS.labels(key[1]).inc()
        except Conflict:
            # There already; if it has finished, its pod event removes it and
            # wakes the runs again.
            pass
        except KubeError:
            del self._up[key]
            raise
        return None

    async def changed(self, event: str, pod: Body) -> None:
        """A shared driver pod's event: track it, clear it away when it ends."""
        meta, phase = pod["metadata"], (pod.get("status") or {}).get("phase")
        key = (meta["namespace"], (meta.get("labels") or {}).get(LABEL_WORKFLOW, ""))
        if event == "DELETED":
            if self._up.get(key) == meta["name"]:
                del self._up[key]
            await self._wake_runs(*key)
            return
        if meta.get("deletionTimestamp"):
            return
        if phase not in (PodPhase.SUCCEEDED, PodPhase.FAILED):
            self._up[key] = meta["name"]
            self._revisions[key] = (meta.get("labels") or {}).get(LABEL_REVISION, "")
            return
        failures = self._failures.get(key, (0, 0.0))[0]
        if phase == PodPhase.FAILED:
            failures += 1
            log.warning(
                "shared driver %s/%s failed (%d in a row); see its log",
                meta["namespace"],
                meta["name"],
                failures,
            )
            backoff = min(2**failures, MAX_BACKOFF_SECONDS)
            self._failures[key] = (failures, time.time() + backoff)
        else:
            self._failures.pop(key, None)
        with contextlib.suppress(NotFound):  # already gone
            await self.kube.delete(PODS, meta["namespace"], meta["name"], grace_period_seconds=0)

    async def _wake_runs(self, namespace: str, workflow: str) -> None:
        """Reconcile the unfinished shared-mode runs of a Workflow whose driver went away."""
        listed = await self.kube.list(
            RUNS, namespace, field_selector=f"spec.workflowRef.name={workflow}"
        )
        # Shared runs, and runs not yet claimed by any driver.
        waiting = [
            run["metadata"]["name"]
            for run in listed.get("items") or []
            if _shared_or_unclaimed(run.get("status") or {})
        ]
        await asyncio.gather(*(self._reconcile(namespace, name) for name in waiting))


def _shared_or_unclaimed(status: Body) -> bool:
    if not status:
        return True
    shared = bool((status.get("driver") or {}).get("shared"))
    return shared and status.get("phase") not in FINAL_PHASES
