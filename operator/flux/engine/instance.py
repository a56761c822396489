"""One run of a workflow: the durable-replay core both executors drive.

The instance runs the workflow function on a private deterministic loop. Each
step the workflow takes (a task call, a built-in, a sleep, a pause) gets a
deterministic call id and is checked against history: a recorded step returns
its recorded outcome, a new one is appended to history and becomes a command
for the executor. Outcomes come back through :meth:`deliver`, one at a time, in
the order the executor commits them. Nothing here does I/O or reads the clock:
time and randomness are passed in, and every value they produce is recorded.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import datetime as dt
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from flux import _runtime, codec
from flux.context import WorkflowExecutionContext
from flux.engine import values
from flux.engine.commands import CancelCall, Command, ScheduleTask, StartTimer
from flux.engine.failures import ErrorInfo, error_info, to_exception
from flux.engine.loop import DeterministicLoop
from flux.engine.policy import TaskPolicy
from flux.errors import CodecError, NonDeterminismError, TaskExitError, WorkflowCancelled
from flux.events import (
    TASK_OUTCOME_EVENTS,
    WORKFLOW_FINAL_EVENTS,
    WORKFLOW_STEP_EVENTS,
    EventType,
    ExecutionEvent,
    ExecutionState,
)
from flux.redaction import Redactor
from flux.task import SECRETS_ARGUMENT, MapBatch, Task
from flux.workflow import Workflow

# Kept importable from here: executors read stored values with it.
read_value = values.read_value

Clock = Callable[[], dt.datetime]


@dataclass(eq=False)
class _Call:
    call_id: str
    name: str
    kind: str  # "task", "builtin", "sleep" or "pause"
    future: asyncio.Future[Any]
    task: Task[..., Any] | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    until: dt.datetime | None = None
    settled: bool = False  # its outcome is in history
    replayed: bool = False  # the step was found in history rather than newly recorded
    cancel_requested: bool = False  # the caller gave up on it; its cancellation is pending


class WorkflowInstance:
    def __init__(
        self,
        workflow: Workflow[Any],
        execution_id: str,
        history: list[ExecutionEvent],
        *,
        clock: Clock,
        rng: random.Random,
        input: Any = None,
        secrets: dict[str, str] | None = None,
        redactor: Redactor | None = None,
    ):
        self.workflow = workflow
        # Every event passes through it on its way into history (see _emit); the
        # executor adds the values of task secrets as it resolves them.
        self.redactor = redactor if redactor is not None else Redactor()
        self.redactor.add((secrets or {}).values())
        self.execution_id = execution_id
        self._clock = clock
        self._rng = rng
        self._loop = DeterministicLoop()  # type: ignore[abstract]
        self._calls: dict[str, _Call] = {}
        self._counters: collections.Counter[str] = collections.Counter()
        self._commands: list[Command] = []
        self._descriptions: dict[Task[..., Any], dict[str, Any]] = {}
        self._new_events: list[ExecutionEvent] = []
        self._expected: collections.deque[ExecutionEvent] = collections.deque()
        self._outcomes_left = 0
        self._unreplayed: collections.deque[ExecutionEvent] = collections.deque()
        self._replaying = False
        self._divergence: NonDeterminismError | None = None
        self._main: asyncio.Task[None] | None = None
        self._cancel_requested = False
        self.events: list[ExecutionEvent] = list(history)
        # Replaying a run that already ended must not record its end a second time.
        self._end_recorded = any(e.type in WORKFLOW_FINAL_EVENTS for e in history)
        if history:
            started = history[0]
            if started.type != EventType.WORKFLOW_STARTED:
                raise ValueError(f"history of {execution_id} does not begin with WORKFLOW_STARTED")
            input = codec.decode(started.value, values.workflow_input(workflow))
        self.ctx: WorkflowExecutionContext[Any] = WorkflowExecutionContext(
            workflow.name, execution_id, input, self.events, ExecutionState.CREATED, None, secrets
        )

    # ------------------------------------------------------------------ driving

    def start(self, *, cancelled_after: int | None = None) -> None:
        """Begin a new run, or replay an existing history up to where it stopped.

        ``cancelled_after``: the run was cancelled (:meth:`cancel`) when its history
        ended with the event of this id. History has no event for a cancel, so an
        executor that keeps this elsewhere passes it in, and the replay cancels the
        workflow at the same point: outcomes recorded after it reach a workflow that
        has given up on their calls, as they did when they were recorded.
        """
        history = list(self.events)
        if not history:
            first = started_event(
                self.workflow.name, self.execution_id, self.ctx.input, self._clock()
            )
            self.events.append(first)
            self._new_events.append(first)
        self.ctx.state = ExecutionState.RUNNING
        context = contextvars.copy_context()
        context.run(_runtime.current_workflow.set, self)
        self._main = self._loop.create_task(self._run_main(), context=context)
        if history:
            self._replay(history, cancelled_after)
        else:
            self._loop.run_until_idle()

    def _replay(self, history: list[ExecutionEvent], cancelled_after: int | None = None) -> None:
        self._expected = collections.deque(e for e in history if e.type in WORKFLOW_STEP_EVENTS)
        outcomes = [e for e in history if e.type in TASK_OUTCOME_EVENTS]
        self._outcomes_left = len(outcomes)
        self._unreplayed = collections.deque(outcomes)
        self._replaying = True
        self._loop.run_until_idle()
        for event in outcomes:
            if self._divergence is not None:
                break
            if cancelled_after is not None and event.id > cancelled_after:
                self._cancel_in_replay()
            self._outcomes_left -= 1
            self._unreplayed.popleft()
            call = self._calls.get(event.source_id)
            if call is None:
                self._diverged(
                    f"history records an outcome for {event.source_id} ({event.name}), "
                    "but the replayed workflow never made that call"
                )
                self._loop.run_until_idle()
                break
            self._settle(call, event, None)
            self._loop.run_until_idle()
        if cancelled_after is not None and self._divergence is None:
            self._cancel_in_replay()
        self._replaying = False
        if self._divergence is None and self._expected:
            missing = self._expected[0]
            self._diverged(
                f"history records {missing.source_id} ({missing.name}), "
                "but the replayed workflow no longer makes that call"
            )
            self._loop.run_until_idle()
        if self._pending_pause() is not None and not self.ctx.state.is_final:
            self.ctx.state = ExecutionState.PAUSED
        if self._divergence is None:
            self._command_in_flight_calls()

    def _cancel_in_replay(self) -> None:
        """Replay :meth:`cancel` (once): its calls' cancellations are commanded at
        the end of the replay, with the other calls in flight."""
        if self._cancel_requested or self.ctx.state.is_final:
            return
        self._cancel_requested = True
        if self._main is not None:
            self._main.cancel()
        self._loop.run_until_idle()

    def _command_in_flight_calls(self) -> None:
        for call in self._calls.values():
            if call.settled or not call.replayed:
                continue
            if call.future.cancelled() or call.cancel_requested:
                self._commands.append(CancelCall(call.call_id))
            elif call.kind == "task" and call.task is not None:
                self._commands.append(
                    ScheduleTask(call.call_id, call.name, call.task, call.args, call.kwargs, True)
                )
            elif call.kind == "sleep" and call.until is not None:
                self._commands.append(StartTimer(call.call_id, call.until))
            elif call.kind == "builtin":
                # Both events of a built-in are committed together, so this is corruption.
                self._diverged(f"built-in {call.call_id} has no recorded value")
                self._loop.run_until_idle()

    def deliver(
        self,
        event_type: EventType,
        call_id: str,
        value: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Record the outcome of a call and let the workflow continue."""
        call = self._calls[call_id]
        event = self._emit(event_type, call_id, call.name, value)
        self._settle(call, event, error)
        self._loop.run_until_idle()

    def record(
        self,
        event_type: EventType,
        call_id: str,
        value: Any = None,
        *,
        at: dt.datetime | None = None,
    ) -> ExecutionEvent:
        """Record a policy step of a call (retry, fallback, rollback) without an outcome.

        ``at``: when the step happened, if the executor learns of it later (the
        Kubernetes driver copies steps from a task's record when the call ends);
        default: the clock. Replay never compares times, so any is deterministic.
        """
        return self._emit(event_type, call_id, self._calls[call_id].name, value, at)

    def resume(self, input: Any) -> None:
        pending = self._pending_pause()
        if pending is None:
            raise RuntimeError(f"run {self.execution_id} is not paused")
        encoded = codec.encode(input)  # an input the store cannot take changes nothing
        self._emit(EventType.WORKFLOW_RESUMED, self.execution_id, self.workflow.name, None)
        self.ctx.state = ExecutionState.RUNNING
        self.deliver(EventType.TASK_RESUMED, pending.call_id, encoded)

    def cancel(self) -> None:
        """Cancel the run: stop the workflow and every call still in flight."""
        if self.ctx.state.is_final:
            return
        self._cancel_requested = True
        if self._main is not None:
            self._main.cancel()
        self._loop.run_until_idle()

    def take_commands(self) -> list[Command]:
        commands, self._commands = self._commands, []
        return commands

    def take_events(self) -> list[ExecutionEvent]:
        events, self._new_events = self._new_events, []
        return events

    @property
    def state(self) -> ExecutionState:
        return self.ctx.state

    def pending_pause_name(self) -> str | None:
        pending = self._pending_pause()
        return pending.name if pending else None

    def is_settled(self, call_id: str) -> bool:
        call = self._calls.get(call_id)
        return call is not None and call.settled

    def in_flight(self) -> list[str]:
        return [c.call_id for c in self._calls.values() if not c.settled and c.kind != "pause"]

    def is_in_flight(self, call_id: str) -> bool:
        """Whether ``call_id`` is in :meth:`in_flight`, without listing a map of 100k calls."""
        call = self._calls.get(call_id)
        return call is not None and not call.settled and call.kind != "pause"

    def call_events(self, call_id: str) -> list[ExecutionEvent]:
        return [e for e in self.events if e.source_id == call_id]

    # ------------------------------------------------- WorkflowRuntime protocol

    def call_task(
        self,
        task: Task[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        batch: MapBatch | None = None,
    ) -> Awaitable[Any]:
        name = task.call_name(args, kwargs)
        try:
            encoded = {"args": codec.encode(list(args)), "kwargs": codec.encode(kwargs)}
            # The task gets the arguments as they cross the boundary (decoded copies),
            # as it does in a pod: no aliasing with the workflow's objects.
            args, kwargs = values.decode_arguments(task, encoded["args"], encoded["kwargs"])
        except CodecError as exc:
            raise CodecError(f"task {name!r}: arguments cannot be serialised: {exc}") from None
        if SECRETS_ARGUMENT in kwargs and task.options.secret_requests:
            raise ValueError(f"task {name!r}: 'secrets' is filled in by Flux; do not pass it")
        call = self._new_call(name, "task", task=task, args=args, kwargs=kwargs)
        if batch is not None and batch.group is None:
            # The first item of a batched map names the group: unique in the run
            # (call ids are) and the same on every replay.
            batch.group = call.call_id
        if self._check_step(EventType.TASK_STARTED, call, encoded):
            # What an executor in another process needs to run the call; only the
            # arguments are compared on replay, so changing options (or a map's
            # batch_size) is not divergence.
            if task not in self._descriptions:
                self._descriptions[task] = describe_task(task)
            described = {**encoded, **self._descriptions[task]}
            if batch is not None:
                described["batch"] = {"group": batch.group, "size": batch.size}
            self._emit(EventType.TASK_STARTED, call.call_id, name, described)
            self._commands.append(ScheduleTask(call.call_id, name, task, args, kwargs))
        return self._await_task(call)

    async def _await_task(self, call: _Call) -> Any:
        """The task's outcome. A caller that is cancelled (a failed ``parallel``, a
        cancelled run) waits until the call's cancellation, rollback included, is
        recorded, so that nothing of the call happens after the workflow moved on."""
        try:
            return await asyncio.shield(call.future)
        except asyncio.CancelledError:
            if call.future.done():
                raise
        call.cancel_requested = True
        if not self._replaying:
            self._commands.append(CancelCall(call.call_id))
        while not call.future.done():
            try:
                await asyncio.shield(call.future)
            except asyncio.CancelledError:
                continue  # cancelled again while waiting: the wait goes on
        raise asyncio.CancelledError

    def builtin(self, name: str, compute: _runtime.BuiltinCompute) -> Awaitable[Any]:
        call = self._new_call(name, "builtin")
        if self._check_step(EventType.TASK_STARTED, call, None):
            self._emit(EventType.TASK_STARTED, call.call_id, name, None)
            value = compute(self._rng, self._clock())
            event = self._emit(EventType.TASK_COMPLETED, call.call_id, name, codec.encode(value))
            self._settle(call, event, None)
        return call.future

    def sleep(self, seconds: float) -> Awaitable[None]:
        call = self._new_call("sleep", "sleep")
        if self._check_step(EventType.TASK_STARTED, call, None):
            call.until = self._clock() + dt.timedelta(seconds=seconds)
            self._emit(
                EventType.TASK_STARTED,
                call.call_id,
                "sleep",
                {"until": call.until.isoformat(), "seconds": seconds},
            )
            self._commands.append(StartTimer(call.call_id, call.until))
        return call.future

    def pause(self, name: str, output: Any) -> Awaitable[Any]:
        call = self._new_call(name, "pause", counter_key="pause")
        value = {"output": codec.encode(output)}
        if self._check_step(EventType.TASK_PAUSED, call, None):
            self._emit(EventType.TASK_PAUSED, call.call_id, name, value)
            self._emit(
                EventType.WORKFLOW_PAUSED, self.execution_id, self.workflow.name, {"pause": name}
            )
            self.ctx.state = ExecutionState.PAUSED
        return call.future

    # ---------------------------------------------------------------- internals

    def _new_call(
        self,
        name: str,
        kind: str,
        *,
        counter_key: str | None = None,
        task: Task[..., Any] | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> _Call:
        if self._divergence is not None:
            raise self._divergence
        # A call's name can be formatted from its arguments: masked like its events.
        name = self.redactor.text(name)
        key = counter_key or name
        call_id = f"{key}#{self._counters[key]}"
        self._counters[key] += 1
        call = _Call(call_id, name, kind, self._loop.create_future(), task, args, kwargs or {})
        call.future.add_done_callback(functools.partial(self._on_call_done, call))
        self._calls[call_id] = call
        return call

    def _check_step(self, event_type: EventType, call: _Call, encoded: Any) -> bool:
        """Match a step against history. True when it is new and must be recorded."""
        if not self._replaying:
            return True
        if not self._expected:
            if self._outcomes_left == 0:
                self._replaying = False
                return True
            raise self._diverged(
                f"the workflow now calls {call.call_id} ({call.name}), "
                "which history does not record at this point"
            )
        expected = self._expected.popleft()
        if expected.type != event_type or expected.source_id != call.call_id:
            raise self._diverged(
                f"history records {expected.source_id} ({expected.name}) at this point, "
                f"but the workflow now calls {call.call_id} ({call.name})"
            )
        # History holds the arguments as recorded: with secret values masked.
        encoded = self.redactor.redact(encoded)
        if encoded is not None and {k: expected.value.get(k) for k in encoded} != encoded:
            raise self._diverged(
                f"{call.call_id} ({call.name}) is now called with other "
                "arguments than history records"
            )
        if call.kind == "sleep":
            call.until = dt.datetime.fromisoformat(expected.value["until"])
        call.replayed = True
        return False

    def _diverged(self, message: str) -> NonDeterminismError:
        """Mark the run as diverged from its history; the run then fails with this error."""
        error = NonDeterminismError(
            f"workflow {self.workflow.name!r} is not deterministic: {message}"
        )
        if self._divergence is None:
            self._divergence = error
            if self._main is not None and not self._main.done():
                self._main.cancel()
        return self._divergence

    def _settle(self, call: _Call, event: ExecutionEvent, error: BaseException | None) -> None:
        call.settled = True
        future = call.future
        if future.done():
            return
        match event.type:
            case EventType.TASK_COMPLETED | EventType.TASK_RESUMED:
                try:
                    future.set_result(self._read_outcome(call, event.value))
                except Exception as exc:  # a stored value that cannot be read back
                    future.set_exception(exc)
            case EventType.TASK_FAILED:
                future.set_exception(error or to_exception(event.value))
            case EventType.TASK_CANCELLED:
                future.cancel()
            case _:
                raise ValueError(f"{event.type} is not an outcome")

    def _read_outcome(self, call: _Call, value: Any) -> Any:
        if call.kind == "pause":
            # A resume input is a user's value: a reference in it is only data.
            return codec.decode(value, values.resume_input(self.workflow))
        if call.kind != "task":
            return codec.decode(value)  # built-ins and timers: the codec's own types
        return read_value(value, values.task_result(call.task))

    def _on_call_done(self, call: _Call, _: asyncio.Future[Any]) -> None:
        if call.future.cancelled() and not call.settled and not self._replaying:
            self._commands.append(CancelCall(call.call_id))

    def _pending_pause(self) -> _Call | None:
        for call in self._calls.values():
            if call.kind == "pause" and not call.settled and not call.future.done():
                return call
        return None

    def _emit(
        self,
        event_type: EventType,
        source_id: str,
        name: str,
        value: Any,
        at: dt.datetime | None = None,
    ) -> ExecutionEvent:
        # The one way into history: secret values are masked here, before an
        # outcome reaches the workflow, so a live run and its replay see the same.
        event = ExecutionEvent(
            event_type,
            source_id,
            self.redactor.text(name),
            self._clock() if at is None else at,
            self.redactor.redact(value),
            len(self.events) + 1,
        )
        self.events.append(event)
        self._new_events.append(event)
        return event

    def _emit_end(self, event_type: EventType, value: Any) -> None:
        if not self._end_recorded:
            self._emit(event_type, self.execution_id, self.workflow.name, value)

    async def _run_main(self) -> None:
        try:
            self.ctx.input = self.workflow.validate_input(self.ctx.input)
            output = await self.workflow.func(self.ctx)
        except asyncio.CancelledError:
            if self._divergence is not None:
                self._finish_failed(self._divergence)
            elif self._cancel_requested:
                self._finish_cancelled()
            else:
                self._finish_failed(WorkflowCancelled("the workflow was cancelled from inside"))
            return
        except Exception as exc:
            self._finish_failed(self._divergence or self._history_left_over() or exc)
            return
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            # Raised by the workflow's own code: it fails the run, never ends the process.
            self._finish_failed(TaskExitError.from_exit(self.workflow.name, exc, "workflow"))
            return
        divergence = self._divergence or self._history_left_over()
        if divergence is not None:
            self._finish_failed(divergence)
            return
        self._finish_completed(output)

    def _history_left_over(self) -> NonDeterminismError | None:
        """A replayed workflow that ends before its history does has diverged from it."""
        if not self._replaying:
            return None
        if self._expected:
            missing = self._expected[0]
            return self._diverged(
                f"history records {missing.source_id} ({missing.name}), "
                "but the replayed workflow ended without making that call"
            )
        for event in self._unreplayed:
            # Outcomes of calls the workflow made and abandoned may follow its end.
            if event.source_id not in self._calls:
                return self._diverged(
                    f"history records an outcome for {event.source_id} ({event.name}), "
                    "but the replayed workflow ended without making that call"
                )
        return None

    def _finish_completed(self, output: Any) -> None:
        try:
            stored = values.store_value(self.workflow.output_storage, self.execution_id, output)
        except CodecError as exc:
            self._finish_failed(CodecError(f"workflow {self.workflow.name!r} output: {exc}"))
            return
        masked = self.redactor.redact(stored)
        if masked is not stored:
            # The caller gets the output as history keeps it, as a later `show` does.
            output = codec.decode(masked, values.workflow_output(self.workflow))
            stored = masked
        self.ctx.output = output
        self.ctx.state = ExecutionState.COMPLETED
        self._emit_end(EventType.WORKFLOW_COMPLETED, stored)
        self._cancel_leftovers()

    def _finish_failed(self, exc: BaseException) -> None:
        info: ErrorInfo = self.redactor.redact(error_info(exc))
        self.ctx.output = dict(info)
        self.ctx.state = ExecutionState.FAILED
        self._emit_end(EventType.WORKFLOW_FAILED, info)
        self._cancel_leftovers()

    def _finish_cancelled(self) -> None:
        self.ctx.state = ExecutionState.CANCELLED
        self._emit_end(EventType.WORKFLOW_CANCELLED, None)
        self._cancel_leftovers()

    def _cancel_leftovers(self) -> None:
        # Calls the workflow never awaited to the end must not outlive the run.
        for call in self._calls.values():
            if not call.settled and not call.future.done():
                call.future.cancel()


def started_event(
    workflow_name: str, execution_id: str, input: Any, now: dt.datetime
) -> ExecutionEvent:
    """The first event of every run; recording it is what creates the run."""
    return ExecutionEvent(
        EventType.WORKFLOW_STARTED, execution_id, workflow_name, now, codec.encode(input), 1
    )


def describe_task(task: Task[..., Any]) -> dict[str, Any]:
    """The task's import path and policy, as recorded with each of its calls; its pod
    settings too when it has any (else the event is as before they existed)."""
    func = task.func
    described: dict[str, Any] = {
        "task": f"{func.__module__}:{func.__qualname__}",
        "policy": TaskPolicy.from_options(task.options).to_dict(),
        "secrets": list(task.options.secret_requests),
    }
    if task.options.pod_settings is not None:
        described["pod"] = task.options.pod_settings.to_dict()
    return described
