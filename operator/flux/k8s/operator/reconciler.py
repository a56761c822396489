"""One pass of a run: observe (the cache, result logs, open calls) → ``plan_run``
→ apply; and the operator assembled from its parts.

The decisions are in :mod:`flux.k8s.reconcile`. Status writes that depend on
what was read carry JSON-patch tests, so a view that turns out stale fails the
write and the pass runs again on a fresh read (see :mod:`.queue`).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random

from flux.k8s import metrics, retention, runstore
from flux.k8s.archive import ArchiveUnreadable
from flux.k8s.bodies import as_workflow
from flux.k8s.config import OperatorConfig
from flux.k8s.kube import Kube, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.labels import LABEL_SCHEDULE, LABEL_WORKFLOW
from flux.k8s.operator.apply import PlanApplier
from flux.k8s.operator.background import BackgroundTasks
from flux.k8s.operator.cache import Cache, Key
from flux.k8s.operator.driver_slots import DriverSlots
from flux.k8s.operator.events import BackgroundEvents
from flux.k8s.operator.logs import PodLogs
from flux.k8s.operator.queue import BACKSTOP_SECONDS, Requeue, WorkQueue
from flux.k8s.operator.retention import Expiry
from flux.k8s.operator.schedules import Schedules
from flux.k8s.operator.shared_drivers import SharedDrivers
from flux.k8s.operator.workflows import Workflows
from flux.k8s.pods import current_revision
from flux.k8s.protocol import RESULT_LOG_MARKER
from flux.k8s.reconcile import Observed, Plan, plan_run
from flux.k8s.revisions import valid_name
from flux.k8s.states import FINAL_PHASES


class Reconciler:
    """The operator: what its watch events call, and the pass they lead to."""

    def __init__(self, kube: Kube, config: OperatorConfig, events: BackgroundEvents) -> None:
        self.kube = kube
        self.config = config
        self.events = events
        self.cache = Cache(kube)
        self.open_calls = runstore.OpenCallsCache(kube)
        self.queue = WorkQueue(
            self._pass, stale=lambda key: self.cache.stale(*key), finished=self._finished
        )
        self.shared_drivers = SharedDrivers(kube, self.queue.reconcile)
        self.applier = PlanApplier(kube, self.cache, self.shared_drivers, events)
        self.workflows = Workflows(kube, self.cache, events, config)
        self.schedules = Schedules(kube, self.cache, events)
        self.expiry = Expiry(kube, config.retention_deletes_per_second)
        self.driver_slots = DriverSlots(config.max_driver_pods, self._wake)
        # Read at scrape time: nothing to keep in step.
        metrics.DRIVER_PODS.set_function(lambda: self.driver_slots.running)
        metrics.RUNS_WAITING_FOR_DRIVER.set_function(lambda: self.driver_slots.waiting)
        self._woken = BackgroundTasks()
        self._rng = random.Random()
        # Last phase seen per run, for the metrics only; never used for decisions.
        self._phases: dict[Key, str] = {}
        # How many of those are in each phase, kept as they move (see metrics.set_active_counts).
        self._phase_counts: collections.Counter[str] = collections.Counter()

    # -- watch events ----------------------------------------------------------

    async def run_event(self, event: str | None, run: Body) -> None:
        """A WorkflowRun's watch event (None: listed when the watch started)."""
        meta = run["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        labels = meta.get("labels") or {}
        if LABEL_SCHEDULE in labels and (
            event == "DELETED" or (run.get("status") or {}).get("phase") in FINAL_PHASES
        ):
            await self.schedules.run_ended(namespace, labels.get(LABEL_WORKFLOW, ""))
        if event == "DELETED":
            self.forget(namespace, name)
            await self._revision_unused(run)
            return
        if event == "ADDED":  # not listed at start
            self.cache.run_created(namespace, name)
        if self.cache.run_seen(run):
            await self.queue.reconcile(namespace, name)

    async def pod_event(self, event: str, pod: Body, run_name: str) -> None:
        """A task or driver pod's watch event; ``run_name`` is its run label."""
        self.driver_slots.pod_seen(event, pod)
        if self.cache.pod_seen(event, pod):
            await self.queue.reconcile(pod["metadata"]["namespace"], run_name)

    async def shared_driver_event(self, event: str, pod: Body) -> None:
        await self.shared_drivers.changed(event, pod)

    async def workflow_event(self, event: str | None, workflow: Body) -> None:
        if event == "DELETED":
            meta = workflow["metadata"]
            self.cache.forget_workflow(meta["namespace"], meta["name"])
            self.schedules.forget(meta["namespace"], meta["name"])
        else:
            await self.workflows.check(workflow)
            await self.schedules.changed(workflow)

    async def reconcile(self, namespace: str, name: str) -> None:
        await self.queue.reconcile(namespace, name)

    def stop(self) -> None:
        """Start no more passes: leadership is being handed over."""
        self.queue.stop()

    async def backstop(self, interval: float = BACKSTOP_SECONDS) -> None:
        await asyncio.gather(self.queue.backstop(interval), self.schedules.backstop(interval))

    async def expire(self) -> None:
        """Delete finished runs as their time to live runs out (until cancelled)."""
        await self.expiry.run()

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self.queue.forget(key)
        self.expiry.forget(key)
        self.cache.forget_run(namespace, name)
        self.driver_slots.forget_run(key)
        self.open_calls.forget(namespace, name)
        metrics.forget_run(namespace, name)
        phase = self._phases.pop(key, None)
        if phase is not None:
            self._phase_counts[phase] -= 1
            metrics.set_active_counts(self._phase_counts)

    # -- one pass ----------------------------------------------------------------

    async def _pass(self, key: Key) -> Requeue | None:
        namespace, name = key
        try:
            run = await self.cache.run(namespace, name)
        except NotFound:
            self.forget(namespace, name)
            return None
        if run["metadata"].get("deletionTimestamp"):
            return None
        workflow = await self.cache.workflow_of(run)
        pods = await self.cache.pods_of(namespace, name)
        pod_logs = PodLogs(self.kube, namespace)
        logs = await result_logs(self.kube, namespace, pods, pod_logs)
        open_calls, history_lost = None, None
        if (run.get("status") or {}).get("historyArchive"):
            try:
                open_calls = await self.open_calls.open_calls(run)
            except ArchiveUnreadable as exc:
                history_lost = str(exc)
        now = dt.datetime.now(dt.UTC)
        workflow_name = (run.get("spec") or {}).get("workflowRef", {}).get("name", "")
        shared_up = self.shared_drivers.is_up(namespace, workflow_name)
        status = run.get("status") or {}
        revision_configmap = await self._older_revision(run, workflow)
        # No await from here to planned(): see DriverSlots.
        slots = self.driver_slots.slots_for(key, status)
        observed = Observed(
            run,
            workflow,
            pods,
            now,
            logs,
            open_calls,
            shared_up,
            driver_slots=slots,
            revision_configmap=revision_configmap,
            history_lost=history_lost,
        )
        plan = plan_run(observed, self.config, self._rng.random())
        self.driver_slots.planned(key, status, plan)
        await self.applier.apply(run, plan, pods, pod_logs)
        self._observe(run, plan, now, pods)
        after = {**run, "status": {**(run.get("status") or {}), **plan.status}}
        ttl_default = self.config.run_ttl_seconds
        self.expiry.schedule(key, retention.expires_at(after, workflow, ttl_default))
        return Requeue(plan.wake_at)

    async def _older_revision(self, run: Body, workflow: Body | None) -> Body | None:
        """The ConfigMap of the revision ``run`` recorded, when that is not its
        Workflow's current one (plan_run checks the run may use it)."""
        recorded = (run.get("status") or {}).get("revision")
        if workflow is None or not valid_name(recorded):
            return None
        if recorded == current_revision(as_workflow(workflow), self.config).name:
            return None
        meta = workflow["metadata"]
        return await self.workflows.revision_configmap(meta["namespace"], meta["name"], recorded)

    async def _revision_unused(self, run: Body) -> None:
        """A deleted run may have been the last user of an older revision."""
        recorded = (run.get("status") or {}).get("revision")
        namespace = run["metadata"]["namespace"]
        workflow_name = (run.get("spec") or {}).get("workflowRef", {}).get("name", "")
        try:
            workflow = await self.cache.workflow(namespace, workflow_name)
        except NotFound:
            return  # its ConfigMaps go with it
        current = (workflow.get("status") or {}).get("revision")
        if recorded and current and recorded != current:
            await self.workflows.collect(namespace, workflow_name, current)

    def _wake(self, key: Key) -> None:
        """A pass of a run waiting for a driver slot, now that one is free."""
        self._woken.start(self.queue.reconcile(*key))

    def _finished(self, key: Key) -> bool:
        return self._phases.get(key) in FINAL_PHASES

    def _observe(self, run: Body, plan: Plan, now: dt.datetime, pods: list[Body]) -> None:
        """Metrics of a pass whose plan was carried out."""
        key = (run["metadata"]["namespace"], run["metadata"]["name"])
        metrics.record(metrics.deltas(run, plan.status, now, self._phases.get(key), pods))
        phase = plan.status.get("phase") or (run.get("status") or {}).get("phase")
        before = self._phases.get(key)
        if phase and before != phase:
            self._phases[key] = phase
            if before is not None:
                self._phase_counts[before] -= 1
            self._phase_counts[phase] += 1
            metrics.set_active_counts(self._phase_counts)
        if phase in FINAL_PHASES:
            self.queue.finished(key)
            self.driver_slots.finished(key)
            if not pods and not plan.delete:
                # Finished and cleared away: rarely looked at again, and then read.
                self.cache.forget_run(*key)


async def result_logs(
    kube: Kube, namespace: str, pods: list[Body], logs: PodLogs | None = None
) -> dict[str, str]:
    """Results too large for a termination message are on the log's last line.

    The log is read as far back as the task log kept of the pod (``logs`` hold it
    for that), so a pod's log costs one request."""
    logs = logs or PodLogs(kube, namespace)
    found: dict[str, str] = {}
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        terminated = (statuses[0].get("state") or {}).get("terminated") if statuses else None
        if not terminated or '"inLog":true' not in (terminated.get("message") or ""):
            continue
        name = pod["metadata"]["name"]
        text = await logs.read(name)
        for line in reversed(text.splitlines()):
            if line.startswith(RESULT_LOG_MARKER):
                found[name] = line[len(RESULT_LOG_MARKER) :]
                break
    return found
