"""Workflow schedules: a timer per Workflow that starts its scheduled runs.

Each Workflow with schedules has a pass of its own in a second work queue
(keyed by the Workflow): it runs on the Workflow's watch events, when a run a
schedule started ends (Forbid may be waiting for it), and at the next due
time (the queue's requeue-after; nothing polls). What is due and what to do
about it is decided in :mod:`flux.k8s.schedules`; this module reads the
schedule's runs, creates and cancels them, and writes ``status.schedules``.

Run names are derived from the due time, so a pass repeated after a restart or
a lost status write finds the run there already and starts nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flux.k8s.kube import RUNS, WORKFLOWS, Conflict, Invalid, JsonPatch, Kube, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.labels import ANNOTATION_SCHEDULED_TIME, LABEL_SCHEDULE, LABEL_WORKFLOW
from flux.k8s.models import API_VERSION, ScheduleStatus, to_json
from flux.k8s.operator.cache import Cache, Key
from flux.k8s.operator.events import BackgroundEvents
from flux.k8s.operator.queue import Requeue, WorkQueue
from flux.k8s.pods import owner_reference
from flux.k8s.schedules import (
    TOO_MANY_MISSED,
    Decision,
    Due,
    ScheduleError,
    Skip,
    decide,
    due,
    missed_beyond_deadline,
    parse,
    parse_time,
)
from flux.k8s.states import FINAL_PHASES, ConcurrencyPolicy, EventKind, Reason

log = logging.getLogger(__name__)


class Schedules:
    def __init__(self, kube: Kube, cache: Cache, events: BackgroundEvents) -> None:
        self.kube = kube
        self.cache = cache
        self.events = events
        # Workflows with schedules: the backstop passes only these.
        self._scheduled: set[Key] = set()
        self.queue = WorkQueue(
            self._pass,
            stale=lambda key: self.cache.forget_workflow(*key),
            finished=lambda key: key not in self._scheduled,
        )

    async def changed(self, workflow: Body) -> None:
        """A Workflow's watch event (not a deletion)."""
        meta = workflow["metadata"]
        key = (meta["namespace"], meta["name"])
        had = key in self._scheduled or (workflow.get("status") or {}).get("schedules")
        if (workflow.get("spec") or {}).get("schedules"):
            self._scheduled.add(key)
        elif not had:
            return
        else:
            self._scheduled.discard(key)
        await self.queue.reconcile(*key)

    async def run_ended(self, namespace: str, workflow: str) -> None:
        """A run a schedule started ended or went away: a Forbid may have waited on it."""
        if (namespace, workflow) in self._scheduled:
            await self.queue.reconcile(namespace, workflow)

    def forget(self, namespace: str, name: str) -> None:
        self._scheduled.discard((namespace, name))
        self.queue.forget((namespace, name))

    async def backstop(self, interval: float) -> None:
        await self.queue.backstop(interval)

    # -- one pass ----------------------------------------------------------------

    async def _pass(self, key: Key) -> Requeue | None:
        namespace, name = key
        try:
            workflow = await self.cache.workflow(namespace, name)
        except NotFound:
            self.forget(namespace, name)
            return None
        if workflow["metadata"].get("deletionTimestamp"):
            return None
        now = dt.datetime.now(dt.UTC)
        status = workflow.get("status") or {}
        held = {e.get("name"): e for e in status.get("schedules") or []}
        entries: list[dict[str, Any]] = []
        wakes: list[dt.datetime] = []
        for schedule in (workflow.get("spec") or {}).get("schedules") or []:
            entry, wake = await self._schedule(workflow, schedule, held.get(schedule["name"]), now)
            entries.append(entry)
            if wake is not None:
                wakes.append(wake)
        if entries != (status.get("schedules") or []):
            await self._write(workflow, entries)
        return Requeue(min(wakes) if wakes else None)

    async def _schedule(
        self,
        workflow: Body,
        schedule: dict[str, Any],
        held: dict[str, Any] | None,
        now: dt.datetime,
    ) -> tuple[dict[str, Any], dt.datetime | None]:
        """One schedule's pass: its status entry, and when it is due next."""
        held = held or {}
        since = parse_time(held.get("sinceTime")) or _appeared(workflow, now)
        last = parse_time(held.get("lastScheduleTime"))
        try:
            cron = parse(schedule["cron"], schedule.get("timeZone"))
        except ScheduleError:
            # The Scheduled condition says why (Workflows.check); the others go on.
            entry = ScheduleStatus(name=schedule["name"], last_schedule_time=last, since_time=since)
            return to_json(entry), None
        deadline = schedule.get("startingDeadlineSeconds")
        found = due(cron, since=since, last=last, deadline_seconds=deadline, now=now)
        policy = ConcurrencyPolicy(schedule.get("concurrencyPolicy") or ConcurrencyPolicy.ALLOW)
        suspend = bool(schedule.get("suspend"))
        unfinished: list[str] = []
        if found is not None and not suspend and policy != ConcurrencyPolicy.ALLOW:
            unfinished = await self._unfinished(workflow, schedule["name"])
        decision = decide(
            cron,
            workflow=workflow["metadata"]["name"],
            schedule=schedule["name"],
            policy=policy,
            suspend=suspend,
            last=last,
            found=found,
            unfinished=unfinished,
            now=now,
        )
        if found is not None:
            late = missed_beyond_deadline(
                cron, since=since, last=last, deadline_seconds=deadline, now=now
            )
            await self._carry_out(workflow, schedule, found, decision, late)
        entry = ScheduleStatus(
            name=schedule["name"],
            last_schedule_time=decision.last_schedule_time,
            next_schedule_time=decision.next_schedule_time,
            since_time=since,
        )
        return to_json(entry), decision.next_schedule_time

    async def _carry_out(
        self, workflow: Body, schedule: dict[str, Any], found: Due, decision: Decision, late: bool
    ) -> None:
        name = schedule["name"]
        when = found.time.isoformat()
        if decision.too_many_missed:
            self._warn(
                workflow,
                Reason.TOO_MANY_MISSED_TIMES,
                f"schedule {name}: too many missed start times (over {TOO_MANY_MISSED}); "
                "starting only the latest. Set or decrease startingDeadlineSeconds",
            )
        if decision.skipped == Skip.FORBIDDEN:
            self.events.post(
                workflow,
                EventKind.NORMAL,
                Reason.SCHEDULE_SKIPPED,
                f"schedule {name}: not starting the run for {when}: an earlier run is "
                "unfinished (concurrencyPolicy Forbid)",
            )
        for run in decision.cancel:
            how = await self._cancel(workflow["metadata"]["namespace"], run)
            self.events.post(
                workflow,
                EventKind.NORMAL,
                Reason.RUN_REPLACED,
                f"schedule {name}: {how} run {run} (concurrencyPolicy Replace)",
            )
        if decision.create is None:
            return
        if late:
            self._warn(
                workflow,
                Reason.MISSED_SCHEDULE,
                f"schedule {name}: times more than startingDeadlineSeconds "
                f"({schedule.get('startingDeadlineSeconds')}) ago were not started",
            )
        if await self._create(workflow, schedule, found.time, decision.create):
            self.events.post(
                workflow,
                EventKind.NORMAL,
                Reason.RUN_SCHEDULED,
                f"schedule {name}: started run {decision.create} for {when}",
            )

    # -- I/O ---------------------------------------------------------------------

    async def _unfinished(self, workflow: Body, schedule: str) -> list[str]:
        meta = workflow["metadata"]
        selector = f"{LABEL_WORKFLOW}={meta['name']},{LABEL_SCHEDULE}={schedule}"
        listed = await self.kube.list(RUNS, meta["namespace"], label_selector=selector)
        return [
            run["metadata"]["name"]
            for run in listed["items"]
            if not run["metadata"].get("deletionTimestamp")
            and (run.get("status") or {}).get("phase") not in FINAL_PHASES
        ]

    async def _create(
        self, workflow: Body, schedule: dict[str, Any], time: dt.datetime, name: str
    ) -> bool:
        """Start the run; False if it was there already (or cannot be created)."""
        meta = workflow["metadata"]
        spec: dict[str, Any] = {"workflowRef": {"name": meta["name"]}}
        if schedule.get("input") is not None:
            spec["input"] = schedule["input"]
        run: Body = {
            "apiVersion": API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {LABEL_WORKFLOW: meta["name"], LABEL_SCHEDULE: schedule["name"]},
                "annotations": {ANNOTATION_SCHEDULED_TIME: time.isoformat()},
                "ownerReferences": [{**owner_reference(workflow), "kind": "Workflow"}],
            },
            "spec": spec,
        }
        try:
            await self.kube.create(RUNS, meta["namespace"], run)
        except Conflict:
            return False  # started by an earlier pass
        except Invalid as exc:
            # E.g. a Workflow name too long for a label value: say so, never crash.
            self._warn(workflow, Reason.INVALID_SCHEDULE, f"cannot start run {name}: {exc}")
            return False
        return True

    async def _cancel(self, namespace: str, run: str) -> str:
        """Request the run's cancellation (``spec.cancel``); where the CRD has no such
        field (the API server pruned it), delete the run instead. Says which."""
        try:
            cancel = JsonPatch().add("/spec/cancel", True)
            written = await self.kube.patch(RUNS, namespace, run, cancel)
            if (written.get("spec") or {}).get("cancel") is True:
                return "cancelled"
            await self.kube.delete(RUNS, namespace, run)
        except NotFound:
            return "found gone"
        return "deleted"

    async def _write(self, workflow: Body, entries: list[dict[str, Any]]) -> None:
        meta = workflow["metadata"]
        ops = JsonPatch()
        if not workflow.get("status"):
            ops.test("/status", None).add("/status", {"schedules": entries})
        elif entries:
            ops.add("/status/schedules", entries)
        else:
            ops.remove("/status/schedules")
        written = await self.kube.patch(
            WORKFLOWS, meta["namespace"], meta["name"], ops, status=True
        )
        self.cache.workflow_seen(written)

    def _warn(self, workflow: Body, reason: Reason, message: str) -> None:
        log.warning("workflow %s: %s", workflow["metadata"]["name"], message)
        self.events.post(workflow, EventKind.WARNING, reason, message)


def _appeared(workflow: Body, now: dt.datetime) -> dt.datetime:
    """When a schedule without status appeared: with the Workflow if its spec never
    changed (times missed while the operator was down are then due), else now."""
    meta = workflow["metadata"]
    created = parse_time(meta.get("creationTimestamp"))
    if created is not None and meta.get("generation", 1) == 1:
        return created
    return now
