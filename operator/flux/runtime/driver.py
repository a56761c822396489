"""The workflow driver: replays a WorkflowRun's workflow in a pod and records its steps.

The driver is the only writer of a run's history. It replays the workflow
against ``status.history``, delivers the outcomes the operator put in
``status.tasks`` (and resume inputs and due timers), and appends the new events
with JSON-patch ``add`` operations, so it never rewrites what is there. It exits
when the run finishes or pauses, when only a long sleep is left, or when
nothing has happened for a while; the operator starts a new driver when there
is work, and replay makes that safe.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from flux import codec
from flux.engine import values
from flux.engine.commands import CancelCall, ScheduleTask, StartTimer
from flux.engine.failures import ErrorInfo, describe, error_info
from flux.engine.instance import WorkflowInstance
from flux.errors import CodecError, WorkflowInputError
from flux.events import EventType, ExecutionEvent, ExecutionState, utc_now
from flux.k8s import archive, runstore
from flux.k8s.history import event_from_status, event_to_status, finished_records
from flux.k8s.kube import CONFIGMAPS, RUNS, Conflict, JsonPatch, Kube, NotFound
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.objects import create_or_replace
from flux.k8s.kube.patch import pointer
from flux.k8s.kube.versions import newer
from flux.k8s.kube.watch import Listed, follow
from flux.k8s.run_conditions import cancel_requested, succeeded_update
from flux.k8s.states import PHASE_OF_STATE, Phase, TaskState
from flux.workflow import Workflow

log = logging.getLogger("flux.driver")


@dataclass
class Driver:
    kube: Kube
    namespace: str
    name: str
    workflow: Workflow[Any]
    linger: float = 30.0
    timers: dict[str, dt.datetime] = field(default_factory=dict)
    cancels: set[str] = field(default_factory=set)
    # Task outputs kept in their own ConfigMap, by ConfigMap name, once read.
    values: dict[str, Any] = field(default_factory=dict)
    # Posts the Events announcing the run's outcome (None: announce nothing).
    events: EventRecorder | None = None
    # A shared driver claims the runs it takes up before the operator says whose they are.
    shared: bool = False
    # Why the resume input in status.resume was refused; it is removed at the next write.
    refused_resume: str | None = None
    # Whether the resume in status was delivered since the last write (not ignored).
    took_resume: bool = False
    # Whether spec.cancel has been handed to the instance (once: it cannot be unset),
    # and the id of the last event before it (status.cancelledAfter, for replays).
    cancelling: bool = False
    cancelled_after: int | None = None
    # Task calls started since the last write: no pod can exist for them yet.
    unpublished: set[str] = field(default_factory=set)
    # The one watch of the run, kept from one wait to the next (see RunChanges).
    changes: RunChanges | None = None

    async def run(self) -> int:
        body = await self.kube.get(RUNS, self.namespace, self.name)
        if ((body.get("status") or {}).get("driver") or {}).get("shared"):
            log.info("run %s is served by its Workflow's shared driver", self.name)
            return 0  # started by a pass whose claim lost; the operator removes this pod
        instance = await self.begin(body)
        if instance is None:
            return 1
        idle_since = utc_now()
        try:
            while True:
                body, changed = await self.advance(instance, body)
                if changed:
                    idle_since = utc_now()
                wait = self.next_wait(instance, idle_since)
                if wait is None:
                    return 0
                body = await self.wait_for_change(body, wait) or body
        finally:
            if self.changes is not None:
                self.changes.close()

    async def begin(self, body: dict[str, Any]) -> WorkflowInstance | None:
        """Replay the run's history; None if its input cannot be read (the run is failed)."""
        status = body.get("status") or {}
        history = [event_from_status(e) for e in await self._load_history(status)]
        try:
            spec_input = await self._load_input(body.get("spec") or {})
            try:
                # Only classes the workflow declares are rebuilt from a user's input.
                input = codec.decode(spec_input, values.workflow_input(self.workflow))
            except CodecError as exc:
                # An input error (condition InvalidInput), not a crash the driver repeats.
                raise WorkflowInputError(f"spec.input cannot be decoded: {exc}") from None
        except WorkflowInputError as exc:
            await fail_to_load(self.kube, self.namespace, self.name, exc, self.events)
            return None
        instance = WorkflowInstance(
            self.workflow,
            self.name,
            history,
            clock=utc_now,
            rng=random.Random(random.SystemRandom().random()),
            input=input,
        )
        self.cancelled_after = status.get("cancelledAfter")
        self.cancelling = self.cancelled_after is not None
        instance.start(cancelled_after=self.cancelled_after)
        return instance

    async def advance(
        self, instance: WorkflowInstance, body: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Deliver what ``body`` brings and record what follows: the run as written, and
        whether anything happened."""
        await self._load_values(body.get("status") or {})
        # The cancel goes first: outcomes in the same view reach a workflow that has
        # already given up on their calls, as they would have arrived after it.
        changed = self.take_cancel(instance, body)
        changed = self.observe(instance, body.get("status") or {}) or changed
        return await self.publish(instance, body), changed

    def take_cancel(self, instance: WorkflowInstance, body: dict[str, Any]) -> bool:
        """Cancel the run if ``spec.cancel`` asks and it has not finished. True if it did.

        The instance stops the workflow and asks to stop every call in flight (see
        ``_carry_out``): the operator stops their pods and runs their rollbacks, and
        the run is Cancelled once every such call's outcome has been delivered.
        """
        if self.cancelling or not cancel_requested(body) or instance.state.is_final:
            return False
        self.cancelling = True
        self.cancelled_after = instance.ctx.events[-1].id
        log.info("run %s: cancel requested", self.name)
        instance.cancel()
        self._carry_out(instance)
        return True

    def next_wait(self, instance: WorkflowInstance, idle_since: dt.datetime) -> float | None:
        """Seconds to wait for news, or None when this driver has nothing more to do."""
        if instance.state.is_final or instance.state == ExecutionState.PAUSED:
            return None
        wait = self.linger - (utc_now() - idle_since).total_seconds()
        if self.timers:
            due_in = (min(self.timers.values()) - utc_now()).total_seconds()
            if due_in > self.linger and not _tasks_in_flight(instance, self.timers):
                return None  # a long sleep: the operator wakes a new driver when it is due
            wait = min(wait, max(due_in, 0.0))
        if wait <= 0 and not self.timers:
            return None  # waited long: the operator starts a driver when an outcome arrives
        return max(wait, 0.0)

    def observe(self, instance: WorkflowInstance, status: dict[str, Any]) -> bool:
        """Deliver everything that has happened since the last look. True if anything did."""
        changed = self._carry_out(instance)
        for record in finished_records(status):
            call_id = record["callId"]
            if not instance.is_in_flight(call_id):
                continue
            for step in record.get("steps") or []:
                instance.record(
                    EventType(step["type"]), call_id, step.get("value"), at=step_time(step)
                )
            if record["state"] == TaskState.COMPLETED:
                ref = record.get("outputRef")
                output = self.values[ref["configMap"]] if ref else record.get("output")
                instance.deliver(EventType.TASK_COMPLETED, call_id, output)
            elif record["state"] == TaskState.CANCELLED:
                instance.deliver(EventType.TASK_CANCELLED, call_id)
            else:
                instance.deliver(EventType.TASK_FAILED, call_id, record.get("error"))
            changed = self._carry_out(instance) or True
        resume = status.get("resume")
        if resume is not None and instance.pending_pause_name() is not None:
            try:
                # A user's value: plain, nothing declares the type ``pause`` returns.
                instance.resume(codec.decode(resume.get("input")))
            except CodecError as exc:
                # The run stays paused; the refused input is removed and reported.
                self.refused_resume = f"status.resume.input refused: {exc}"
                log.warning("run %s: %s", self.name, self.refused_resume)
            else:
                self.took_resume = True
            changed = self._carry_out(instance) or True
        now = utc_now()
        for call_id, until in sorted(self.timers.items(), key=lambda item: item[1]):
            if until <= now:
                del self.timers[call_id]
                instance.deliver(EventType.TASK_COMPLETED, call_id, None)
                changed = self._carry_out(instance) or True
        return changed

    def _carry_out(self, instance: WorkflowInstance) -> bool:
        """Handle commands that are the driver's own: timers and abandoned calls."""
        did = False
        while commands := instance.take_commands():
            for command in commands:
                match command:
                    case ScheduleTask() if not command.resumed:
                        self.unpublished.add(command.call_id)
                    case StartTimer():
                        self.timers[command.call_id] = command.until
                    case CancelCall() if instance.is_settled(command.call_id):
                        pass  # its outcome came first
                    case CancelCall() if command.call_id in self.timers:
                        del self.timers[command.call_id]
                        instance.deliver(EventType.TASK_CANCELLED, command.call_id)
                        did = True
                    case CancelCall() if (
                        command.call_id in self.unpublished
                        or not instance.is_in_flight(command.call_id)
                    ):
                        # A task not yet written (no pod can exist for it, so nothing
                        # to roll back) or a pause (a cancelled paused run): recorded
                        # cancelled at once, as the embedded executor does.
                        self.unpublished.discard(command.call_id)
                        instance.deliver(EventType.TASK_CANCELLED, command.call_id)
                        did = True
                    case CancelCall():
                        # A task: the operator stops its pod and runs its rollback,
                        # then its record says Cancelled and is delivered like any outcome.
                        self.cancels.add(command.call_id)
                        did = True
                # Task calls need nothing here: the operator acts on their TASK_STARTED.
        return did

    async def publish(self, instance: WorkflowInstance, body: dict[str, Any]) -> dict[str, Any]:
        events = instance.take_events()
        self.unpublished.clear()
        status = body.get("status") or {}
        sealed: list[dict[str, Any]] | None = None
        inline = status.get("history") or []
        new = [event_to_status(e) for e in events]
        if new and archive.history_over_budget(inline, new):
            sealed = await self._seal(body, [*inline, *new])
        output_ref = await self._store_output(body, instance)
        update = succeeded_update(
            {**status, **run_summary(instance)}, utc_now(), body["metadata"].get("generation")
        )
        ops = status_patch(
            instance,
            status,
            events,
            self.cancels,
            sealed,
            output_ref,
            conditions=update.conditions if update else None,
            claim=self.shared,
            cancelled_after=self.cancelled_after,
        )
        refused, self.refused_resume = self.refused_resume, None
        resume_kept = not ops.touches("/status/resume")
        if refused is not None and status.get("resume") is not None and resume_kept:
            ops.remove("/status/resume")
        if not ops:
            return body
        announce = list(update.events) if update else []
        # A resume the write removes (see status_patch) without having delivered it.
        ignored = status.get("resume") is not None and instance.pending_pause_name() is None
        if ignored and not self.took_resume:
            announce.append(("Warning", "ResumeIgnored", _resume_ignored(status)))
        if refused is not None:
            announce.append(("Warning", "ResumeRefused", refused))
        written = await self.kube.patch(RUNS, self.namespace, self.name, ops, status=True)
        self.took_resume = False
        if self.events is not None:
            for kind, reason, message in announce:
                await self.events.post(written, kind, reason, message)
        return written

    async def _seal(
        self, body: dict[str, Any], events: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Move ``events`` to new history chunks; their archive entries."""
        archived = (body.get("status") or {}).get("historyArchive") or []
        entries: list[dict[str, Any]] = []
        for payload, count in archive.split(events):
            index = len(archived) + len(entries)
            name = archive.chunk_name(self.name, archive.HISTORY, index)
            stored = await create_or_replace(
                self.kube, CONFIGMAPS, archive.configmap(body, name, archive.HISTORY, payload)
            )
            entries.append(archive.entry(stored, count))
        return entries

    async def _store_output(
        self, body: dict[str, Any], instance: WorkflowInstance
    ) -> dict[str, Any] | None:
        """A workflow output too large for status goes to its own ConfigMap."""
        status = body.get("status") or {}
        output = run_summary(instance)["output"]
        if output is None or archive.encoded_size(output) <= archive.INLINE_VALUE_BYTES:
            return None
        if status.get("outputRef"):
            ref: dict[str, Any] = status["outputRef"]
            return ref
        name = archive.value_name(self.name, "output")
        stored = await create_or_replace(
            self.kube,
            CONFIGMAPS,
            archive.configmap(body, name, archive.VALUE, archive.pack(output)),
        )
        return archive.entry(stored, 1)

    async def _load_history(self, status: dict[str, Any]) -> list[dict[str, Any]]:
        if not status.get("historyArchive"):
            return list(status.get("history") or [])
        return await runstore.load_history(self.kube, self.namespace, status)

    async def _load_input(self, spec: dict[str, Any]) -> Any:
        """spec.input, or the ConfigMap key spec.inputFrom names (for large inputs)."""
        ref = (spec.get("inputFrom") or {}).get("configMapKeyRef")
        if not ref:
            return spec.get("input")
        if spec.get("input") is not None:
            raise WorkflowInputError("set spec.input or spec.inputFrom, not both")
        where = f"spec.inputFrom: ConfigMap {ref.get('name')!r}"
        try:
            found = await self.kube.get(CONFIGMAPS, self.namespace, ref["name"])
        except NotFound:
            raise WorkflowInputError(f"{where} not found") from None
        text = (found.get("data") or {}).get(ref.get("key"))
        if text is None:
            raise WorkflowInputError(f"{where} has no key {ref.get('key')!r}")
        try:
            return codec.parse_json(text)
        except CodecError as exc:
            raise WorkflowInputError(f"{where} key {ref['key']!r} is not JSON: {exc}") from None

    async def _load_values(self, status: dict[str, Any]) -> None:
        for record in finished_records(status):
            ref = record.get("outputRef")
            if ref and ref["configMap"] not in self.values:
                self.values[ref["configMap"]] = await runstore.load_value(
                    self.kube, self.namespace, ref
                )

    async def wait_for_change(self, body: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The run as it next changes after ``body``, or None after ``timeout`` seconds."""
        if self.changes is None or not self.changes.running():
            self.changes = RunChanges(self.kube, self.namespace, self.name)
            self.changes.start(body["metadata"]["resourceVersion"])
        return await self.changes.after(body["metadata"]["resourceVersion"], timeout)


def status_patch(
    instance: WorkflowInstance,
    status: dict[str, Any],
    events: list[ExecutionEvent],
    cancels: set[str] | None = None,
    sealed: list[dict[str, Any]] | None = None,
    output_ref: dict[str, Any] | None = None,
    *,
    conditions: list[dict[str, Any]] | None = None,
    claim: bool = False,
    cancelled_after: int | None = None,
) -> JsonPatch:
    """JSON-patch operations that append ``events`` and refresh the run's summary.

    With ``sealed`` (archive entries of chunks now holding the inline history
    and ``events``), the inline history is emptied and the entries appended.
    ``conditions`` go with the phase they describe. With ``claim``, a run
    without status becomes a shared driver's. ``cancelled_after`` records where
    the run was cancelled (None: not cancelled, nothing written).
    """
    ops = JsonPatch()
    if not status:
        # Only onto a run still without status: if the operator wrote first, the
        # test fails the write and the run is seen again as the operator left it.
        ops.test("/status", None).add("/status", {})
        if claim:
            ops.add("/status/driver", {"shared": True})
    if sealed:
        archived = status.get("historyArchive") or []
        ops.add("/status/history", [])
        ops.add("/status/historyArchive", [*archived, *sealed])
    else:
        if "history" not in status:
            ops.add("/status/history", [])
        for event in events:
            ops.add("/status/history/-", event_to_status(event))
    summary = run_summary(instance)
    if output_ref is not None:
        summary["output"] = None
        summary["outputRef"] = output_ref
    pending_cancels = sorted(c for c in cancels or () if instance.is_in_flight(c))
    summary["cancelRequested"] = pending_cancels or None
    if conditions is not None:
        summary["conditions"] = conditions
    if cancelled_after is not None:
        summary["cancelledAfter"] = cancelled_after
    for key, value in summary.items():
        if status.get(key) != value:
            if value is None:
                if key in status:
                    ops.remove(pointer("status", key))
            else:
                ops.add(pointer("status", key), value)
    if status.get("resume") is not None and instance.pending_pause_name() is None:
        ops.remove("/status/resume")
    skeleton = 3 if not status and claim else 2 if not status else 0
    if not events and len(ops) == skeleton + int("history" not in status):
        return JsonPatch()  # nothing but the skeleton: no need to write
    return ops


def run_summary(instance: WorkflowInstance) -> dict[str, Any]:
    """The status fields derived from the instance (None means absent)."""
    ctx = instance.ctx
    first = ctx.events[0] if ctx.events else None
    last = ctx.events[-1] if ctx.events else None
    summary: dict[str, Any] = {
        "phase": PHASE_OF_STATE[ctx.state],
        "startTime": first.time.isoformat() if first else None,
        "finishTime": last.time.isoformat() if last and ctx.state.is_final else None,
        "output": None,
        "outputRef": None,
        "error": None,
        "pause": None,
    }
    final = next((e for e in reversed(ctx.events) if e.type in _FINAL), None)
    if final is not None and final.type == EventType.WORKFLOW_COMPLETED:
        summary["output"] = final.value
    elif final is not None and final.type == EventType.WORKFLOW_FAILED:
        info: ErrorInfo = final.value or ErrorInfo()
        summary["error"] = {
            "type": info.get("type", "Error"),
            "message": describe(info),
            "kind": info.get("kind", "code"),
        }
    if ctx.state == ExecutionState.PAUSED:
        paused = next(e for e in reversed(ctx.events) if e.type == EventType.TASK_PAUSED)
        summary["pause"] = {"name": paused.name, "output": (paused.value or {}).get("output")}
    return summary


_FINAL = (EventType.WORKFLOW_COMPLETED, EventType.WORKFLOW_FAILED, EventType.WORKFLOW_CANCELLED)


def step_time(step: dict[str, Any]) -> dt.datetime | None:
    """When the operator recorded a policy step, or None (the driver's clock then)
    for a record written before steps had a time, or a time that is not one."""
    text = step.get("time")
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _tasks_in_flight(instance: WorkflowInstance, timers: dict[str, dt.datetime]) -> bool:
    return any(call_id not in timers for call_id in instance.in_flight())


def _resume_ignored(status: dict[str, Any]) -> str:
    phase = status.get("phase") or Phase.PENDING
    return (
        f"status.resume was set while the run was {phase}, not paused: it was removed "
        "and changed nothing; set it once the run's phase is Paused"
    )


async def fail_to_load(
    kube: Kube,
    namespace: str,
    name: str,
    exc: Exception,
    events: EventRecorder | None = None,
) -> dict[str, Any]:
    """Fail a run whose workflow or input cannot be loaded, its Succeeded
    condition in the same write and its Event posted after, as every writer of a
    phase does: a reader never sees it Failed with a condition still Pending.

    A merge patch (it needs no history and may come before any other write),
    made on the resourceVersion read: another writer in between is a conflict,
    and the run is read again, so its conditions are not overwritten.
    """
    info = error_info(exc)
    error = {"type": info["type"], "message": describe(info), "kind": "code"}
    for attempt in range(1, FAIL_ATTEMPTS + 1):
        body = await kube.get(RUNS, namespace, name)
        meta, status = body["metadata"], body.get("status") or {}
        failed: dict[str, Any] = {"phase": Phase.FAILED, "error": error}
        update = succeeded_update({**status, **failed}, utc_now(), meta.get("generation"))
        if update is not None:
            failed["conditions"] = update.conditions
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": failed}
        try:
            written = await kube.patch(RUNS, namespace, name, patch, status=True)
        except Conflict:
            if attempt == FAIL_ATTEMPTS:
                raise
            continue
        if events is not None and update is not None:
            for kind, reason, message in update.events:
                await events.post(written, kind, reason, message)
        return written
    raise AssertionError("unreachable")  # pragma: no cover


# Tries to fail a run that others keep writing meanwhile (each a read and a write).
FAIL_ATTEMPTS = 5


__all__ = ["Driver", "event_from_status", "fail_to_load", "run_summary", "status_patch"]


class RunChanges:
    """One run's changes, from one watch kept open for the driver's life.

    A watch opened anew for every wait costs the step its set-up, and the HTTP
    connection of the watch it abandons: the status write that follows then
    waits for a new TLS connection. The watch runs in a task of its own and
    queues what it sees; a wait takes the newest change after the body the
    driver holds (its own writes come back as events too, and are skipped).
    """

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        # A body, None for "the run is gone", or what ended the watch.
        self._seen: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self, version: str) -> None:
        self._task = asyncio.create_task(self._watch(version))

    def running(self) -> bool:
        """False once the watch ended, or its event loop did (tests run several)."""
        return self._task is not None and not self._task.done()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def after(self, version: str, timeout: float) -> dict[str, Any] | None:
        """The newest change newer than ``version``; None after ``timeout`` seconds.
        Exits the driver (code 0) when the run is gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                seen = await asyncio.wait_for(self._seen.get(), max(deadline - loop.time(), 0))
            except TimeoutError:
                return None
            while isinstance(seen, dict) and not self._seen.empty():
                seen = self._seen.get_nowait()  # only the newest matters
            if isinstance(seen, BaseException):
                raise seen
            if seen is None:
                raise SystemExit(0)
            if newer(seen["metadata"].get("resourceVersion"), version):
                return seen

    async def _watch(self, version: str) -> None:
        try:
            changes = follow(
                self.kube,
                RUNS,
                self.namespace,
                field_selector=f"metadata.name={self.name}",
                since=version,
            )
            async for change in changes:
                if isinstance(change, Listed):
                    # Listed again after a 410: changes in between are lost, the run
                    # as it is now is the news (and no run means it was deleted).
                    self._seen.put_nowait(change.items[0] if change.items else None)
                elif change["type"] == "DELETED":
                    self._seen.put_nowait(None)
                elif change["type"] in ("MODIFIED", "ADDED"):
                    self._seen.put_nowait(change["object"])
        except Exception as exc:  # the waiting driver raises it, as it did before
            self._seen.put_nowait(exc)
