"""The embedded executor: drives a WorkflowInstance with in-process tasks and SQLite.

After every change the new events are committed, then the instance's commands
are carried out; a run is driven until it finishes, pauses, or has nothing
left that could make progress.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from flux import codec
from flux.context import WorkflowExecutionContext
from flux.engine import values
from flux.engine.commands import CancelCall, ScheduleTask, StartTimer
from flux.engine.instance import WorkflowInstance, started_event
from flux.engine.policy import TaskProgress
from flux.errors import SecretsNotFoundError
from flux.events import EventType, ExecutionEvent, ExecutionState, utc_now
from flux.local import claims
from flux.local.calls import CallOutcome, TaskCallRunner
from flux.local.runs import this_process
from flux.local.secrets import SecretStore
from flux.local.store import Keep, Store, StoreError
from flux.redaction import Redactor
from flux.step_runner import environment_secret_values
from flux.workflow import Workflow

Observer = Callable[[list[ExecutionEvent]], None]
CANCEL_POLL_SECONDS = 0.5


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass
class _Run:
    instance: WorkflowInstance
    runners: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    stored_state: ExecutionState | None = None
    # The process executing the run, recorded with the run's first commit and
    # cleared with the commit that ends it, rather than in commits of their own
    # (two fewer transactions a run, issue 17). None: not recorded with commits.
    owner: str | None = None
    owner_stage: Literal["to record", "recorded", "cleared"] = "to record"

    def owner_change(self) -> str | Keep | None:
        """The owner to record with the commit about to be made."""
        if self.owner is None or self.owner_stage == "cleared":
            return Keep.OWNER
        if self.instance.state.is_final and not self.runners:
            return None  # nothing runs any more: the run has no owner from here on
        return self.owner if self.owner_stage == "to record" else Keep.OWNER

    def owner_recorded(self, change: str | Keep | None) -> None:
        if change is None:
            self.owner_stage = "cleared"
        elif change is not Keep.OWNER:
            self.owner_stage = "recorded"


class LocalExecutor:
    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        observer: Observer | None = None,
    ):
        self.store = store
        self.secrets = SecretStore(store)
        # The secret values the runs driven here could see, masked in all they record;
        # shared with the CLI, which masks task output with it.
        self.redactor = Redactor(environment_secret_values())
        self.clock = clock
        self.observer = observer
        self._rng = random.Random(random.SystemRandom().random())
        self._claims: dict[str, int] = {}  # run id -> descriptor of its held lock

    # ------------------------------------------------------------ entry points

    @contextmanager
    def claim(self, run_id: str) -> Iterator[None]:
        """Be the one process driving ``run_id`` (re-entrant); RunBusyError if another is.

        Check a run's state only while holding its claim: another process may
        change it until then.
        """
        if run_id in self._claims:
            yield  # the outer claim releases it
            return
        path = claims.lock_path(self.store.path, run_id)
        try:
            fd = claims.acquire(path)
        except OSError as exc:
            raise StoreError(f"cannot lock run {run_id} at {path}: {exc.strerror or exc}") from None
        if fd is None:
            raise claims.RunBusyError(run_id, self.store.owner(run_id))
        self._claims[run_id] = fd
        try:
            yield
        finally:
            del self._claims[run_id]
            claims.release(path, fd)

    def create_run(
        self, workflow: Workflow[Any], input: Any, source: dict[str, Any], run_id: str | None = None
    ) -> str:
        """Validate the input and register a new run (nothing is written if invalid)."""
        workflow.validate_input(input)
        codec.check(input)
        _, missing = self.secrets.resolve(workflow.secret_requests)
        if missing:
            raise SecretsNotFoundError(missing, f"workflow {workflow.name!r}")
        run_id = run_id or new_run_id()
        first = started_event(workflow.name, run_id, input, self.clock())
        self.store.create_run(run_id, workflow.name, source, first)
        return run_id

    async def execute(
        self,
        workflow: Workflow[Any],
        run_id: str,
        *,
        resume: bool = False,
        resume_input: Any = None,
    ) -> WorkflowExecutionContext[Any]:
        with self.claim(run_id):
            return await self._execute(workflow, run_id, resume, resume_input)

    async def _execute(
        self, workflow: Workflow[Any], run_id: str, resume: bool, resume_input: Any
    ) -> WorkflowExecutionContext[Any]:
        if self.store.get_run(run_id).state.is_final:
            return self.stored_context(workflow, run_id)
        instance = self._instance(workflow, run_id)
        instance.start()
        # A replay that diverged from history has already failed the run: record that.
        if resume and not instance.state.is_final:
            instance.resume(resume_input)
        run = _Run(instance, owner=this_process())
        watcher = asyncio.ensure_future(self._watch_cancel(run))
        try:
            self._step(run)  # its commit records the owner
            await run.settled.wait()
        finally:
            watcher.cancel()
            for runner in run.runners.values():
                runner.cancel()
            if run.owner_stage == "recorded":
                self.store.set_owner(run_id, None)
        return instance.ctx

    async def cancel_stored(
        self, workflow: Workflow[Any], run_id: str
    ) -> WorkflowExecutionContext[Any]:
        """Cancel a run that no process is executing (paused, or interrupted by a crash).

        Calls that were in flight when the run stopped get their rollbacks, as they
        would had the run been cancelled while executing; nothing else runs.
        """
        with self.claim(run_id):
            return await self._cancel_stored(workflow, run_id)

    async def _cancel_stored(
        self, workflow: Workflow[Any], run_id: str
    ) -> WorkflowExecutionContext[Any]:
        if self.store.get_run(run_id).state.is_final:
            return self.stored_context(workflow, run_id)
        instance = self._instance(workflow, run_id)
        instance.start()
        interrupted: dict[str, ScheduleTask] = {}
        cancels: list[CancelCall] = []
        for command in instance.take_commands():
            if isinstance(command, ScheduleTask) and command.resumed:
                interrupted[command.call_id] = command
            elif isinstance(command, CancelCall):
                cancels.append(command)
        instance.cancel()
        cancels += [c for c in instance.take_commands() if isinstance(c, CancelCall)]
        run = _Run(instance)
        self.store.set_owner(run_id, this_process())
        try:
            self._commit(run)
            for cancel in cancels:
                scheduled = interrupted.get(cancel.call_id)
                if scheduled is None:
                    # Never started, a timer or a pause: there is nothing to roll back.
                    self._deliver(run, cancel.call_id, EventType.TASK_CANCELLED, None)
                else:
                    await self._cancelled(run, self._call_runner(run, scheduled))
        finally:
            self.store.set_owner(run_id, None)
        return instance.ctx

    def stored_context(self, workflow: Workflow[Any], run_id: str) -> WorkflowExecutionContext[Any]:
        """The context of a run as its history stands, without running anything."""
        events = self.store.events(run_id)
        record = self.store.get_run(run_id)
        input = codec.decode(events[0].value, values.workflow_input(workflow)) if events else None
        ctx: WorkflowExecutionContext[Any] = WorkflowExecutionContext(
            workflow.name, run_id, input, events, record.state
        )
        for event in reversed(events):
            if event.type == EventType.WORKFLOW_COMPLETED:
                ctx.output = values.read_value(event.value, values.workflow_output(workflow))
                break
            if event.type == EventType.WORKFLOW_FAILED:
                ctx.output = event.value
                break
        return ctx

    # ---------------------------------------------------------------- driving

    def _instance(self, workflow: Workflow[Any], run_id: str) -> WorkflowInstance:
        found, _ = self.secrets.resolve(workflow.secret_requests)
        return WorkflowInstance(
            workflow,
            run_id,
            self.store.events(run_id),
            clock=self.clock,
            rng=self._rng,
            secrets=found,
            redactor=self.redactor,
        )

    def _step(self, run: _Run) -> None:
        """Commit what the workflow recorded, then carry out what it asked for."""
        instance = run.instance
        self._commit(run)
        for command in instance.take_commands():
            match command:
                case ScheduleTask():
                    self._start(run, command.call_id, self._run_task(run, command))
                case StartTimer():
                    self._start(run, command.call_id, self._run_timer(run, command))
                case CancelCall():
                    if instance.is_settled(command.call_id):
                        continue  # it ended before the cancellation reached it
                    runner = run.runners.get(command.call_id)
                    if runner is not None:
                        runner.cancel()
                    if runner is None or not _has_begun(runner):
                        # A runner cancelled before its first step never runs its
                        # handler, so the cancellation is recorded here.
                        self._deliver(run, command.call_id, EventType.TASK_CANCELLED, None)
        self._check_settled(run)

    def _commit(self, run: _Run) -> None:
        instance = run.instance
        events = instance.take_events()
        state = instance.state if instance.state != run.stored_state else None
        owner = run.owner_change()
        if events or state is not None or owner is not Keep.OWNER:
            self.store.append(instance.execution_id, events, state, owner)
            run.stored_state = instance.state
            run.owner_recorded(owner)
        if self.observer and events:
            self.observer(events)

    def _check_settled(self, run: _Run) -> None:
        state = run.instance.state
        if run.runners:
            return
        if state.is_final or state == ExecutionState.PAUSED or not run.instance.in_flight():
            run.settled.set()

    def _start(self, run: _Run, call_id: str, job: Any) -> None:
        runner = asyncio.ensure_future(job)
        run.runners[call_id] = runner

        def finished(_: asyncio.Task[None]) -> None:
            run.runners.pop(call_id, None)
            self._check_settled(run)

        runner.add_done_callback(finished)

    def _call_runner(self, run: _Run, command: ScheduleTask) -> TaskCallRunner:
        return TaskCallRunner(
            command.call_id,
            command.name,
            command.task,
            command.args,
            command.kwargs,
            log=_HistoryLog(self, run, command.call_id),
            clock=self.clock,
            secrets=self._resolve_secrets,
            rng=self._rng,
        )

    def _resolve_secrets(self, names: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
        found, missing = self.secrets.resolve(names)
        # Known to the redactor before the task runs, so before anything it
        # returns, raises or prints can be recorded.
        self.redactor.add(found.values())
        return found, missing

    async def _run_task(self, run: _Run, command: ScheduleTask) -> None:
        instance = run.instance
        call_runner = self._call_runner(run, command)
        progress = (
            TaskProgress.from_events(instance.call_events(command.call_id))
            if command.resumed
            else None
        )
        try:
            outcome: CallOutcome = await call_runner.run(progress)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancelled(run, call_runner))
            return
        self._deliver(run, command.call_id, outcome.event_type, outcome.value)

    async def _cancelled(self, run: _Run, call_runner: TaskCallRunner) -> None:
        await call_runner.rollback_after_cancel()
        self._deliver(run, call_runner.call_id, EventType.TASK_CANCELLED, None)

    async def _run_timer(self, run: _Run, command: StartTimer) -> None:
        wait = (command.until - self.clock()).total_seconds()
        try:
            if wait > 0:
                await asyncio.sleep(wait)
        except asyncio.CancelledError:
            self._deliver(run, command.call_id, EventType.TASK_CANCELLED, None)
            return
        self._deliver(run, command.call_id, EventType.TASK_COMPLETED, None)

    def _deliver(self, run: _Run, call_id: str, event_type: EventType, value: Any) -> None:
        run.runners.pop(call_id, None)
        run.instance.deliver(event_type, call_id, value)
        self._step(run)

    async def _watch_cancel(self, run: _Run) -> None:
        run_id = run.instance.execution_id
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            if self.store.cancel_requested(run_id):
                self.cancel(run)
                return

    def cancel(self, run: _Run) -> None:
        run.instance.cancel()
        self._step(run)


def _has_begun(runner: asyncio.Task[None]) -> bool:
    coro = runner.get_coro()
    return not (inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED")


@dataclass
class _HistoryLog:
    executor: LocalExecutor
    run: _Run
    call_id: str

    def record(self, event_type: EventType, value: Any = None) -> None:
        self.run.instance.record(event_type, self.call_id, value)
        self.executor._step(self.run)
