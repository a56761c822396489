"""One reconcile of a WorkflowRun: from what is observed to what must change.

Pure: ``plan_run`` takes the run, its Workflow and its pods as read from the
API and returns a :class:`Plan`; the operator carries the plan out. Nothing is
remembered between reconciles, so operator restarts and repeated or lost
watch events do no harm.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from flux.events import WORKFLOW_FINAL_EVENTS
from flux.k8s import api, archive
from flux.k8s.archive import OpenCalls
from flux.k8s.calls import Call, CallMove, PodView, next_move
from flux.k8s.config import OperatorConfig
from flux.k8s.decisions import succeeded_update
from flux.k8s.models import DriverMode
from flux.k8s.pods import (
    batch_pod,
    driver_pod,
    driver_pod_name,
    shared_driver_pod,
    task_pod,
    task_pod_name,
)
from flux.k8s.protocol import BatchItem, BatchSpec, TaskSpec
from flux.k8s.states import (
    CONFIGURATION_ERROR,
    FINAL_PHASES,
    FINISHED_TASK_STATES,
    POD_STATES,
    ConditionStatus,
    ConditionType,
    Phase,
    PodPhase,
    PodRole,
    Reason,
    Step,
    TaskState,
)


@dataclass
class Observed:
    run: dict[str, Any]
    workflow: dict[str, Any] | None
    pods: list[dict[str, Any]]
    now: dt.datetime
    logs: dict[str, str] = field(default_factory=dict)
    # The calls the whole history (archive and status) leaves open; derived from
    # status.history alone when not given (a run with nothing archived).
    open_calls: OpenCalls | None = None
    # Whether the shared driver of the run's Workflow is known to be up.
    shared_driver_up: bool = False


@dataclass
class Plan:
    status: dict[str, Any] = field(default_factory=dict)
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    wake_at: dt.datetime | None = None
    # Settled task records to move out of status into the task archive.
    archive_tasks: list[dict[str, Any]] = field(default_factory=list)
    # The Workflow's shared driver pod, to create unless it is already there.
    shared_driver: dict[str, Any] | None = None

    def wake(self, when: dt.datetime | None) -> None:
        if when is not None and (self.wake_at is None or when < self.wake_at):
            self.wake_at = when


def plan_run(observed: Observed, config: OperatorConfig, unit_random: float = 0.5) -> Plan:
    run, now = observed.run, observed.now
    status: dict[str, Any] = run.get("status") or {}
    phase = status.get("phase")
    generation = run["metadata"].get("generation")
    plan = Plan()
    views = {
        p["metadata"]["name"]: PodView.from_pod(p, observed.logs.get(p["metadata"]["name"]))
        for p in observed.pods
    }
    if phase in FINAL_PHASES:
        _clear_away(plan, observed, views, status)
        _conditions(plan, status, now, generation)
        return plan
    workflow = observed.workflow
    problem = _workflow_problem(run, workflow)
    if problem is not None:
        reason, message = problem
        if reason == "":
            plan.wake(now + dt.timedelta(seconds=1))  # the Workflow is being checked
            return plan
        _fail(plan, status, reason, message, now, generation)
        plan.delete.extend(views)
        return plan
    assert workflow is not None
    # A new run of a Shared Workflow whose driver is up is claimed by the driver's
    # first write (phase, conditions and all); an operator write saying Pending
    # first would be a write per run for a state that lasts milliseconds.
    claimable = (
        not status
        and observed.shared_driver_up
        and (workflow.get("spec") or {}).get("driverMode") == DriverMode.SHARED
    )
    if phase is None and not claimable:
        plan.status["phase"] = Phase.PENDING
    open_calls = observed.open_calls
    if open_calls is None:
        open_calls = OpenCalls().apply(status.get("history") or [])
    records = {r["callId"]: r for r in status.get("tasks") or []}
    cap = config.max_task_pods_per_run
    # Records in play (holding a pod, or finished and waiting for the driver to take
    # the outcome) stay in status: the operator's cap bounds them (a batch pod's items
    # each count), so neither a lagging driver nor big batches can make the run
    # outgrow its size budget. The Workflow's parallelism bounds pods.
    room = _Room(
        busy=_pods_held(records, open_calls),
        in_play=_in_play(records, open_calls),
        pod_limit=min((workflow.get("spec") or {}).get("parallelism") or cap, cap),
        cap=cap,
    )
    tasks = _TaskPass(
        plan, observed, config, workflow, views, open_calls, records, room, unit_random
    )
    for call_id, record in records.items():
        # A record of a settled call still holding a pod: the workflow abandoned it.
        if call_id in open_calls or not record.get("pod"):
            continue
        if record.get("state") not in FINISHED_TASK_STATES:
            plan.delete.append(record["pod"])
            tasks.updated[call_id] = {**record, "state": TaskState.CANCELLED, "pod": None}
    due = tasks.advance_recorded()
    tasks.settle_unstartable()
    tasks.start_waiting(due)
    updated, referenced = tasks.finish()
    plan.archive_tasks = archive.settled_to_archive(
        [r for cid, r in updated.items() if cid not in open_calls], set(updated)
    )
    if plan.archive_tasks:
        moved = {r["callId"] for r in plan.archive_tasks}
        updated = {cid: r for cid, r in updated.items() if cid not in moved}
    if updated != records:
        plan.status["tasks"] = list(updated.values())
    # Task pods no record points to any more (finished steps, superseded pods).
    for name in views:
        role = _role(observed.pods, name)
        if role == PodRole.TASK and name not in referenced and name not in plan.delete:
            plan.delete.append(name)
    _plan_driver(plan, observed, config, workflow, status, updated, open_calls, views)
    for until in _pending_sleeps(open_calls):
        plan.wake(until)
    if status or plan.status:
        _conditions(plan, {**status, **plan.status}, now, generation)
    return plan


# A driver that records the workflow's end posts its Event right after the write,
# with a token bound to its pod: deleting the pod at once (which also voids the
# token) lost that Event. Its pod is left this long to exit by itself.
DRIVER_EXIT_GRACE = dt.timedelta(seconds=30)


def _clear_away(
    plan: Plan, observed: Observed, views: dict[str, PodView], status: dict[str, Any]
) -> None:
    """Remove a finished run's pods; the driver that finished it once it has exited."""
    history = status.get("history") or []
    ended_by_driver = bool(history) and history[-1].get("type") in _WORKFLOW_ENDS
    finish = status.get("finishTime")
    for name, view in views.items():
        if ended_by_driver and finish and _role(observed.pods, name) == PodRole.DRIVER:
            until = dt.datetime.fromisoformat(finish) + DRIVER_EXIT_GRACE
            if not view.finished and observed.now < until:
                plan.wake(until)  # its pod event comes sooner, when it exits
                continue
        plan.delete.append(name)


_WORKFLOW_ENDS = frozenset(e.value for e in WORKFLOW_FINAL_EVENTS)


def _holds_pod(record: dict[str, Any]) -> bool:
    return record.get("state") in POD_STATES


def _pods_held(records: dict[str, dict[str, Any]], open_calls: Container[str]) -> int:
    """Slots in use against the parallelism limit: a batch pod takes one slot."""
    pods: set[str] = set()
    waiting = 0
    for call_id, record in records.items():
        if call_id in open_calls and _holds_pod(record):
            if record.get("pod"):
                pods.add(record["pod"])
            else:
                waiting += 1
    return len(pods) + waiting


def _in_play(records: dict[str, dict[str, Any]], open_calls: Container[str]) -> int:
    return sum(
        1
        for call_id, record in records.items()
        if call_id in open_calls
        and (_holds_pod(record) or record.get("state") in FINISHED_TASK_STATES)
    )


@dataclass
class _Room:
    """What the run may still start this pass."""

    busy: int  # pods, against the parallelism
    in_play: int  # records in play, against the operator's cap
    pod_limit: int
    cap: int

    def full(self) -> bool:
        return self.busy >= self.pod_limit or self.in_play >= self.cap

    def fits(self, items: int) -> bool:
        return not self.full() and self.in_play + items <= self.cap

    def take(self, items: int) -> None:
        self.busy += 1
        self.in_play += items


@dataclass
class _Waiting:
    """A call whose next step needs a new pod, at its place in history."""

    position: int
    call_id: str
    # The map whose pods its next step shares: set when that step is a batched attempt.
    group: str | None
    size: int
    # A recorded call comes with its move; a call not started yet is decoded only
    # once it starts, so the long queue behind the calls that start costs nothing.
    call: Call | None = None
    move: CallMove | None = None


def _position(waiting: _Waiting) -> int:
    return waiting.position


class _TaskPass:
    """The task calls' part of one reconcile: their moves, new pods and records.

    What it evaluates is bounded by what is in play, not by the open calls: the
    records in status (the cap bounds them), the calls that end without a pod,
    and the head of the queue of calls not started yet, as far as there is room.
    """

    def __init__(
        self,
        plan: Plan,
        observed: Observed,
        config: OperatorConfig,
        workflow: dict[str, Any],
        views: dict[str, PodView],
        open_calls: OpenCalls,
        records: dict[str, dict[str, Any]],
        room: _Room,
        unit_random: float,
    ) -> None:
        status = observed.run.get("status") or {}
        self.plan, self.observed, self.config, self.workflow = plan, observed, config, workflow
        self.views, self.open_calls, self.records, self.room = views, open_calls, records, room
        self.unit_random = unit_random
        self.cancels = set(status.get("cancelRequested") or [])
        self.secret_refs: dict[str, dict[str, str]] = (workflow.get("spec") or {}).get(
            "secrets"
        ) or {}
        self.updated = dict(records)
        self.referenced: set[str] = set()
        # Records for calls that had none, with their place in history.
        self.new: dict[str, tuple[int, dict[str, Any]]] = {}

    def advance_recorded(self) -> list[_Waiting]:
        """Move each recorded open call on; those waiting for a new pod, in history order."""
        due: list[_Waiting] = []
        for call_id, record in self.records.items():
            if not self.open_calls.is_task(call_id):
                continue
            call = Call.from_event(self.open_calls.task_event(call_id))
            pod = self.views.get(record["pod"]) if record.get("pod") else None
            if pod is not None and pod.batch_size is not None:
                pod = pod.for_item(call_id)
            move = self._next_move(call, record, pod)
            if move is None:
                if record.get("pod"):
                    self.referenced.add(record["pod"])
                continue
            was_busy = _holds_pod(record)
            if move.start is not None and not was_busy:
                batched = call.batch_group is not None and move.start[0] == Step.ATTEMPT
                group = call.batch_group if batched else None
                position = self.open_calls.position(call_id)
                due.append(_Waiting(position, call_id, group, call.batch_size, call, move))
                continue
            if move.start is None and was_busy and not _holds_pod(move.record):
                self.room.busy -= int(call.batch_group is None)  # a batch pod's: when all are done
            new_record = move.record
            if move.start is not None:
                new_record = self._start_pod(call, move)
            if new_record.get("pod"):
                self.referenced.add(new_record["pod"])
            self._take(move)
            self.updated[call_id] = new_record
        due.sort(key=_position)
        return due

    def settle_unstartable(self) -> None:
        """End the calls not started yet that end without a pod, wherever they wait:
        those the workflow cancelled, and those needing secrets the Workflow lacks."""
        ending = {
            call_id
            for call_id in self.cancels
            if call_id not in self.records and self.open_calls.is_task(call_id)
        }
        for shape in self.open_calls.shapes():
            if any(name not in self.secret_refs for name in shape.secrets):
                ending.update(
                    t.call_id
                    for t in self.open_calls.tasks([shape.key])
                    if t.call_id not in self.records
                )
        for call_id in sorted(ending, key=self.open_calls.position):
            call = Call.from_event(self.open_calls.task_event(call_id))
            move = self._next_move(call, None, None)
            assert move is not None and move.start is None, "a call that ends gets no pod"
            self._take(move)
            self.new[call_id] = (self.open_calls.position(call_id), move.record)

    def start_waiting(self, due: list[_Waiting]) -> None:
        """Start pods for the waiting calls in history order, as long as there is room.

        A map's items start only as full batches: ``batch_size`` of them, or all it
        has left, and at most the cap. While those do not fit, the map waits for
        room and the calls behind it wait too, so that a map is not overtaken for
        good by calls that need less room.
        """
        skip = self.records.keys() | self.new.keys()
        queue = heapq.merge(due, self._not_started(None, skip), key=_position)
        maps: dict[str, Iterator[_Waiting]] = {}
        taken: set[str] = set()
        for waiting in queue:
            if self.room.full():
                break
            if waiting.call_id in taken:
                continue
            if waiting.group is None:
                self._start_one(waiting)
                continue
            if waiting.group not in maps:
                maps[waiting.group] = self._items_of(waiting.group, due, skip)
            # The map's items from this one on, as many as one pod takes.
            batch = list(itertools.islice(maps[waiting.group], min(waiting.size, self.room.cap)))
            if not self.room.fits(len(batch)):
                break
            self._start_batch(batch)
            taken.update(w.call_id for w in batch)

    def finish(self) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """The task records, new ones in history order after the others, and the pods
        they point to."""
        for call_id, (_, record) in sorted(self.new.items(), key=lambda item: item[1][0]):
            self.updated[call_id] = record
        return self.updated, self.referenced

    def _next_move(
        self, call: Call, record: dict[str, Any] | None, pod: PodView | None
    ) -> CallMove | None:
        config = self.config
        return next_move(
            call,
            record,
            pod,
            self.observed.now,
            pending_timeout=config.pending_timeout,
            infrastructure_retries=config.infrastructure_retries,
            timeout_backstop=config.timeout_backstop,
            unit_random=self.unit_random,
            secret_refs=self.secret_refs,
            cancel_requested=call.call_id in self.cancels,
        )

    def _not_started(self, shapes: list[str] | None, skip: Container[str]) -> Iterator[_Waiting]:
        """Open calls without a record, in history order; of ``shapes`` only, if given."""
        for task in self.open_calls.tasks(shapes):
            if task.call_id not in skip:
                yield _Waiting(task.position, task.call_id, task.shape.group, task.shape.size)

    def _items_of(
        self, group: str, due: list[_Waiting], skip: Container[str]
    ) -> Iterator[_Waiting]:
        """The waiting items of one map, in history order."""
        shapes = [s.key for s in self.open_calls.shapes() if s.group == group]
        return heapq.merge(
            [w for w in due if w.group == group],
            self._not_started(shapes, skip),
            key=_position,
        )

    def _resolve(self, waiting: _Waiting) -> tuple[Call, CallMove]:
        if waiting.call is not None and waiting.move is not None:
            return waiting.call, waiting.move
        call = Call.from_event(self.open_calls.task_event(waiting.call_id))
        move = self._next_move(call, None, None)
        assert move is not None and move.start is not None, "a call not started yet starts"
        return call, move

    def _start_one(self, waiting: _Waiting) -> None:
        call, move = self._resolve(waiting)
        self.room.take(1)
        self._record(waiting, self._start_pod(call, move))
        self._take(move)

    def _start_batch(self, batch: list[_Waiting]) -> None:
        self.room.take(len(batch))
        started = _start_batch_pod(
            self.plan,
            self.observed.run,
            self.workflow,
            self.config,
            list(map(self._resolve, batch)),
        )
        for waiting, (_, record) in zip(batch, started, strict=True):
            self._record(waiting, record)

    def _start_pod(self, call: Call, move: CallMove) -> dict[str, Any]:
        assert move.start is not None
        return _start_task_pod(
            self.plan, self.observed.run, self.workflow, self.config, call, move.record, move.start
        )

    def _record(self, waiting: _Waiting, record: dict[str, Any]) -> None:
        self.referenced.add(record["pod"])
        if waiting.call_id in self.records:
            self.updated[waiting.call_id] = record
        else:
            self.new[waiting.call_id] = (waiting.position, record)

    def _take(self, move: CallMove) -> None:
        """What a move does besides its record: pods to remove, Events, a wake-up."""
        self.plan.delete.extend(move.delete)
        self.plan.events.extend(move.events)
        self.plan.wake(move.wake_at)


def _start_batch_pod(
    plan: Plan,
    run: dict[str, Any],
    workflow: dict[str, Any],
    config: OperatorConfig,
    chunk: list[tuple[Call, CallMove]],
) -> list[tuple[Call, dict[str, Any]]]:
    """One pod for the attempts of ``chunk``'s calls; their new records."""
    lead_call, lead_move = chunk[0]
    starts = int(lead_move.record.get("podStarts", 0)) + 1
    name = task_pod_name(run["metadata"]["name"], f"{lead_call.call_id}+batch", starts)
    spec = BatchSpec(
        run=run["metadata"]["name"],
        task=lead_call.task,
        secrets=lead_call.secrets,
        timeout=lead_call.policy.timeout or 0,
        items=[
            BatchItem(
                call_id=call.call_id,
                name=call.name,
                attempt=move.start[1] if move.start else 1,
                positional=call.args,
                keywords=call.kwargs,
            )
            for call, move in chunk
        ],
    )
    plan.create.append(batch_pod(run, workflow, config, spec, name))
    started: list[tuple[Call, dict[str, Any]]] = []
    for call, move in chunk:
        plan.delete.extend(move.delete)
        plan.events.extend(move.events)
        plan.wake(move.wake_at)
        pod_starts = int(move.record.get("podStarts", 0)) + 1
        started.append((call, {**move.record, "podStarts": pod_starts, "pod": name}))
    return started


def _start_task_pod(
    plan: Plan,
    run: dict[str, Any],
    workflow: dict[str, Any],
    config: OperatorConfig,
    call: Call,
    record: dict[str, Any],
    start: tuple[Step, int],
) -> dict[str, Any]:
    step, attempt = start
    starts = int(record.get("podStarts", 0)) + 1
    name = task_pod_name(run["metadata"]["name"], call.call_id, starts)
    spec = TaskSpec(
        run=run["metadata"]["name"],
        call_id=call.call_id,
        name=call.name,
        task=call.task,
        step=step,
        attempt=attempt,
        positional=call.args,
        keywords=call.kwargs,
        secrets=call.secrets,
    )
    plan.create.append(task_pod(run, workflow, config, spec, call.policy.timeout, name))
    return {**record, "podStarts": starts, "pod": name}


def _plan_driver(
    plan: Plan,
    observed: Observed,
    config: OperatorConfig,
    workflow: dict[str, Any],
    status: dict[str, Any],
    records: dict[str, dict[str, Any]],
    open_calls: OpenCalls,
    views: dict[str, PodView],
) -> None:
    run, now = observed.run, observed.now
    driver: dict[str, Any] = dict(status.get("driver") or {"starts": 0, "failures": 0})
    before = dict(driver)
    if driver.get("shared") or (
        not driver.get("starts")
        and (workflow.get("spec") or {}).get("driverMode") == DriverMode.SHARED
    ):
        # The mode is fixed when the run starts, so two kinds of driver never share
        # it: the first write saying which (this one or the shared driver's claim)
        # requires a run without status. A per-run driver started by a pass whose
        # claim lost is removed here, before it does anything but read.
        if _driver_needed(status, records, open_calls, now):
            plan.shared_driver = shared_driver_pod(workflow, config)
        if not driver.get("shared") and (status or not observed.shared_driver_up):
            plan.status["driver"] = {"shared": True}
        plan.delete.extend(n for n in views if _role(observed.pods, n) == PodRole.DRIVER)
        return
    current = driver.get("pod")
    active = False
    for name, view in views.items():
        if _role(observed.pods, name) != PodRole.DRIVER:
            continue
        if name != current or view.finished:
            plan.delete.append(name)
        if name == current:
            if view.phase == PodPhase.FAILED:
                driver["failures"] = int(driver.get("failures", 0)) + 1
                driver["lastFailure"] = now.isoformat()
                driver["pod"] = None
            elif view.phase == PodPhase.SUCCEEDED:
                driver["failures"] = 0
                driver["pod"] = None
            else:
                active = True
    if current and current not in views:
        driver["pod"] = None
    if not active and _driver_needed(status, records, open_calls, now):
        failures = int(driver.get("failures", 0))
        if failures >= config.driver_max_failures:
            _fail(
                plan,
                status,
                Reason.DRIVER_FAILED,
                f"the workflow driver failed {failures} times in a row; "
                f"see the logs of pod {before.get('pod') or current}",
                now,
                run["metadata"].get("generation"),
            )
            return
        last = driver.get("lastFailure")
        not_before = (
            dt.datetime.fromisoformat(last) + dt.timedelta(seconds=min(2**failures, 60))
            if failures and last
            else now
        )
        if not_before > now:
            plan.wake(not_before)
        else:
            starts = int(driver.get("starts", 0)) + 1
            plan.create.append(driver_pod(run, workflow, config, starts))
            driver.update(starts=starts, pod=driver_pod_name(run["metadata"]["name"], starts))
    if driver != before:
        plan.status["driver"] = driver


def _driver_needed(
    status: dict[str, Any],
    records: dict[str, dict[str, Any]],
    open_calls: OpenCalls,
    now: dt.datetime,
) -> bool:
    if not open_calls.events:
        return True
    if status.get("phase") == Phase.PAUSED:
        return status.get("resume") is not None
    if any(
        r.get("state") in FINISHED_TASK_STATES and cid in open_calls for cid, r in records.items()
    ):
        return True
    sleeps = _pending_sleeps(open_calls)
    if any(until <= now for until in sleeps):
        return True
    outstanding_tasks = open_calls.task_count() > 0
    # Nothing outstanding and not finished: the last driver stopped early (crash, deletion).
    return not outstanding_tasks and not sleeps


def _pending_sleeps(open_calls: OpenCalls) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(until) for until in open_calls.sleeps()]


def _role(pods: list[dict[str, Any]], name: str) -> str | None:
    for pod in pods:
        if pod["metadata"]["name"] == name:
            role: str | None = (pod["metadata"].get("labels") or {}).get(api.LABEL_ROLE)
            return role
    return None


def _workflow_problem(
    run: dict[str, Any], workflow: dict[str, Any] | None
) -> tuple[str, str] | None:
    """(reason, message) when the run cannot start; ("", "") while the Workflow is checked."""
    ref = ((run.get("spec") or {}).get("workflowRef") or {}).get("name")
    namespace = run["metadata"]["namespace"]
    if workflow is None:
        return Reason.WORKFLOW_NOT_FOUND, f"Workflow {ref!r} not found in namespace {namespace!r}"
    ready = next(
        (
            c
            for c in (workflow.get("status") or {}).get("conditions") or []
            if c.get("type") == ConditionType.READY
        ),
        None,
    )
    generation = workflow["metadata"].get("generation")
    if ready is None or ready.get("observedGeneration") != generation:
        return "", ""
    if ready.get("status") != ConditionStatus.TRUE:
        return Reason.WORKFLOW_INVALID, f"Workflow {ref!r} is not ready: {ready.get('message', '')}"
    return None


def _fail(
    plan: Plan,
    status: dict[str, Any],
    reason: str,
    message: str,
    now: dt.datetime,
    generation: int | None,
) -> None:
    plan.status.update(
        phase=Phase.FAILED,
        finishTime=now.isoformat(),
        error={"type": reason, "message": message, "kind": CONFIGURATION_ERROR},
    )
    _conditions(plan, {**status, **plan.status}, now, generation)


def _conditions(
    plan: Plan, status: dict[str, Any], now: dt.datetime, generation: int | None
) -> None:
    """Keep the Succeeded condition in step with the phase."""
    update = succeeded_update(status, now, generation)
    if update is not None:
        plan.status["conditions"] = update.conditions
        plan.events.extend(update.events)
