"""The task calls' part of one reconcile: their moves, new pods and records.

What a pass evaluates is bounded by what is in play, not by the open calls: the
records in status (the operator's cap bounds them), the calls that end without
a pod, and the head of the queue of calls not started yet, as far as there is room.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import itertools
import json
from collections.abc import Container, Iterator
from dataclasses import dataclass, field

from flux.k8s.archive import OpenCalls, Shape
from flux.k8s.bodies import RunBody, SecretRefBody, TaskRecordBody, WorkflowBody
from flux.k8s.calls import Call, CallMove, next_move, parse_pod_settings, refuse_pod
from flux.k8s.config import OperatorConfig
from flux.k8s.pod_view import PodView
from flux.k8s.pods import batch_pod, pod_settings_refusal, revision_of, task_pod, task_pod_name
from flux.k8s.protocol import BatchItem, BatchSpec, TaskSpec
from flux.k8s.reconcile.plan import Plan
from flux.k8s.states import FINISHED_TASK_STATES, POD_STATES, Step, TaskState
from flux.pod_settings import PodSettings

Records = dict[str, TaskRecordBody]  # by call id, in status order


@dataclass(frozen=True)
class RunContext:
    """What every call of one pass is decided against."""

    run: RunBody
    workflow: WorkflowBody
    config: OperatorConfig
    now: dt.datetime
    unit_random: float
    views: dict[str, PodView]  # the run's pods, by name
    open_calls: OpenCalls
    cancels: frozenset[str]  # calls the workflow gave up on
    secret_refs: dict[str, SecretRefBody]  # the Workflow's secrets, by name


def holds_pod(record: TaskRecordBody) -> bool:
    return record.get("state") in POD_STATES


def pods_held(records: Records, open_calls: Container[str]) -> int:
    """Slots in use against the parallelism limit: a batch pod takes one slot."""
    pods: set[str] = set()
    waiting = 0
    for call_id, record in records.items():
        if call_id in open_calls and holds_pod(record):
            pod = record.get("pod")
            if pod:
                pods.add(pod)
            else:
                waiting += 1
    return len(pods) + waiting


def in_play(records: Records, open_calls: Container[str]) -> int:
    return sum(
        1
        for call_id, record in records.items()
        if call_id in open_calls
        and (holds_pod(record) or record.get("state") in FINISHED_TASK_STATES)
    )


@dataclass
class Room:
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
class Waiting:
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


def _position(waiting: Waiting) -> int:
    return waiting.position


def _shape_pod_settings(shape: Shape) -> tuple[PodSettings | None, str | None]:
    # The shape's key is its calls' shared event as JSON; most have no pod settings.
    if '"pod":' not in shape.key:
        return None, None
    return _pod_settings_of(shape.key)


@functools.lru_cache(maxsize=256)
def _pod_settings_of(shape_key: str) -> tuple[PodSettings | None, str | None]:
    """Parsed once per shape, not on every pass."""
    return parse_pod_settings(json.loads(shape_key).get("value", {}).get("pod"))


@dataclass
class TaskPass:
    """One pass over a run's task calls; :meth:`run` gives their records and pods."""

    plan: Plan
    context: RunContext
    records: Records
    room: Room
    updated: Records = field(init=False)
    # The pods the records point to once the pass is done.
    referenced: set[str] = field(init=False, default_factory=set)
    # Records for calls that had none, with their place in history.
    new: dict[str, tuple[int, TaskRecordBody]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.updated = dict(self.records)

    def run(self) -> tuple[Records, set[str]]:
        """The task records, new ones in history order after the others, and the pods
        they point to."""
        self.stop_abandoned()
        due = self.advance_recorded()
        self.settle_unstartable()
        self.start_waiting(due)
        for call_id, (_, record) in sorted(self.new.items(), key=lambda item: item[1][0]):
            self.updated[call_id] = record
        return self.updated, self.referenced

    def stop_abandoned(self) -> None:
        """A record of a settled call still holding a pod: the workflow abandoned it."""
        for call_id, record in self.records.items():
            pod = record.get("pod")
            if call_id in self.context.open_calls or not pod:
                continue
            if record.get("state") not in FINISHED_TASK_STATES:
                self.plan.delete.append(pod)
                self.updated[call_id] = {**record, "state": TaskState.CANCELLED, "pod": None}

    def advance_recorded(self) -> list[Waiting]:
        """Move each recorded open call on; those waiting for a new pod, in history order."""
        open_calls = self.context.open_calls
        due: list[Waiting] = []
        for call_id, record in self.records.items():
            if not open_calls.is_task(call_id):
                continue
            call = Call.from_event(open_calls.task_event(call_id))
            pod_name = record.get("pod")
            pod = self.context.views.get(pod_name) if pod_name else None
            if pod is not None and pod.batch_size is not None:
                pod = pod.for_item(call_id)
            move = self._next_move(call, record, pod)
            if move is None:
                if pod_name:
                    self.referenced.add(pod_name)
                continue
            was_busy = holds_pod(record)
            if move.start is not None and not was_busy:
                batched = call.batch_group is not None and move.start[0] == Step.ATTEMPT
                group = call.batch_group if batched else None
                position = open_calls.position(call_id)
                due.append(Waiting(position, call_id, group, call.batch_size, call, move))
                continue
            if move.start is None and was_busy and not holds_pod(move.record):
                self.room.busy -= int(call.batch_group is None)  # a batch pod's: when all are done
            new_record = move.record
            if move.start is not None:
                new_record = self._start_pod(call, move)
            new_pod = new_record.get("pod")
            if new_pod:
                self.referenced.add(new_pod)
            self._take(move)
            self.updated[call_id] = new_record
        due.sort(key=_position)
        return due

    def settle_unstartable(self) -> None:
        """End the calls not started yet that end without a pod, wherever they wait:
        those the workflow cancelled, those needing secrets the Workflow lacks, and
        those whose pod settings cannot be used."""
        open_calls = self.context.open_calls
        ending = {
            call_id
            for call_id in self.context.cancels
            if call_id not in self.records and open_calls.is_task(call_id)
        }
        for shape in open_calls.shapes():
            if (
                any(name not in self.context.secret_refs for name in shape.secrets)
                or self._pod_refusal(*_shape_pod_settings(shape)) is not None
            ):
                ending.update(
                    t.call_id
                    for t in open_calls.tasks([shape.key])
                    if t.call_id not in self.records
                )
        for call_id in sorted(ending, key=open_calls.position):
            call = Call.from_event(open_calls.task_event(call_id))
            move = self._next_move(call, None, None)
            assert move is not None and move.start is None, "a call that ends gets no pod"
            self._take(move)
            self.new[call_id] = (open_calls.position(call_id), move.record)

    def start_waiting(self, due: list[Waiting]) -> None:
        """Start pods for the waiting calls in history order, as long as there is room.

        A map's items start only as full batches: ``batch_size`` of them, or all it
        has left, and at most the cap. While those do not fit, the map waits for
        room and the calls behind it wait too, so that a map is not overtaken for
        good by calls that need less room.
        """
        skip = self.records.keys() | self.new.keys()
        queue = heapq.merge(due, self._not_started(None, skip), key=_position)
        maps: dict[str, Iterator[Waiting]] = {}
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

    def _next_move(
        self, call: Call, record: TaskRecordBody | None, pod: PodView | None
    ) -> CallMove | None:
        context = self.context
        move = next_move(
            call,
            record,
            pod,
            context.now,
            pending_timeout=context.config.pending_timeout,
            infrastructure_retries=context.config.infrastructure_retries,
            timeout_backstop=context.config.timeout_backstop,
            unit_random=context.unit_random,
            secret_refs=context.secret_refs,
            cancel_requested=call.call_id in context.cancels,
        )
        refusal = self._pod_refusal(call.pod, call.pod_problem)
        return refuse_pod(call, record, move, refusal, context.now)

    def _pod_refusal(self, settings: PodSettings | None, problem: str | None) -> str | None:
        context = self.context
        image = revision_of(context.run, context.workflow, context.config).image
        return pod_settings_refusal(settings, problem, image, context.config)

    def _not_started(self, shapes: list[str] | None, skip: Container[str]) -> Iterator[Waiting]:
        """Open calls without a record, in history order; of ``shapes`` only, if given."""
        for task in self.context.open_calls.tasks(shapes):
            if task.call_id not in skip:
                yield Waiting(task.position, task.call_id, task.shape.group, task.shape.size)

    def _items_of(self, group: str, due: list[Waiting], skip: Container[str]) -> Iterator[Waiting]:
        """The waiting items of one map, in history order."""
        shapes = [s.key for s in self.context.open_calls.shapes() if s.group == group]
        return heapq.merge(
            [w for w in due if w.group == group],
            self._not_started(shapes, skip),
            key=_position,
        )

    def _resolve(self, waiting: Waiting) -> tuple[Call, CallMove]:
        if waiting.call is not None and waiting.move is not None:
            return waiting.call, waiting.move
        call = Call.from_event(self.context.open_calls.task_event(waiting.call_id))
        move = self._next_move(call, None, None)
        assert move is not None and move.start is not None, "a call not started yet starts"
        return call, move

    def _start_one(self, waiting: Waiting) -> None:
        call, move = self._resolve(waiting)
        self.room.take(1)
        self._record(waiting, self._start_pod(call, move))
        self._take(move)

    def _start_batch(self, batch: list[Waiting]) -> None:
        """One pod for the attempts of ``batch``'s calls."""
        self.room.take(len(batch))
        chunk = list(map(self._resolve, batch))
        lead_call, lead_move = chunk[0]
        run_name = self.context.run["metadata"]["name"]
        starts = lead_move.record.get("podStarts", 0) + 1
        name = task_pod_name(run_name, f"{lead_call.call_id}+batch", starts)
        spec = BatchSpec(
            run=run_name,
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
        context = self.context
        self.plan.create.append(
            batch_pod(context.run, context.workflow, context.config, spec, name, lead_call.pod)
        )
        for waiting, (_, move) in zip(batch, chunk, strict=True):
            self._take(move)
            pod_starts = move.record.get("podStarts", 0) + 1
            self._record(waiting, {**move.record, "podStarts": pod_starts, "pod": name})

    def _start_pod(self, call: Call, move: CallMove) -> TaskRecordBody:
        """A pod for the step ``move`` starts; the call's record pointing to it."""
        assert move.start is not None
        step, attempt = move.start
        record, context = move.record, self.context
        starts = record.get("podStarts", 0) + 1
        run_name = context.run["metadata"]["name"]
        name = task_pod_name(run_name, call.call_id, starts)
        spec = TaskSpec(
            run=run_name,
            call_id=call.call_id,
            name=call.name,
            task=call.task,
            step=step,
            attempt=attempt,
            positional=call.args,
            keywords=call.kwargs,
            secrets=call.secrets,
            timeout=(call.policy.timeout or 0) if step == Step.ATTEMPT else 0,
        )
        pod = task_pod(context.run, context.workflow, context.config, spec, name, call.pod)
        self.plan.create.append(pod)
        return {**record, "podStarts": starts, "pod": name}

    def _record(self, waiting: Waiting, record: TaskRecordBody) -> None:
        pod = record.get("pod")
        assert pod is not None, "a started call's record points to its pod"
        self.referenced.add(pod)
        if waiting.call_id in self.records:
            self.updated[waiting.call_id] = record
        else:
            self.new[waiting.call_id] = (waiting.position, record)

    def _take(self, move: CallMove) -> None:
        """What a move does besides its record: pods to remove, Events, a wake-up."""
        self.plan.delete.extend(move.delete)
        self.plan.events.extend(move.events)
        self.plan.wake(move.wake_at)
