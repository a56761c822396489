"""The embedded default behind ``wf.run``, ``wf.resume`` and tasks awaited directly."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

from flux.context import WorkflowExecutionContext
from flux.engine import failures, values
from flux.errors import CodecError, WorkflowInputError
from flux.events import EventType, ExecutionState, utc_now
from flux.local import runs
from flux.local.calls import TaskCallRunner
from flux.local.executor import LocalExecutor, new_run_id
from flux.local.loader import source_of
from flux.local.open_stores import borrowed_store
from flux.local.secrets import SecretStore
from flux.redaction import Redactor
from flux.step_runner import environment_secret_values
from flux.task import Task
from flux.workflow import Workflow

T = TypeVar("T")


class _NoLog:
    def record(self, event_type: EventType, value: Any = None) -> None:
        return None


class EmbeddedExecutor:
    def run_workflow(
        self, workflow: Workflow[Any], input: Any, execution_id: str | None
    ) -> WorkflowExecutionContext[Any]:
        """Start a run, or continue, resume (paused: with no input) or return a stored one.

        Raises RunBusyError while another process executes the run, ResumeError
        (leaving the run untouched) when it is a run of another workflow.
        """
        run_id = execution_id or new_run_id()
        with borrowed_store() as store:
            executor = LocalExecutor(store)
            with executor.claim(run_id):
                if not runs.exists(store, run_id):
                    try:
                        executor.create_run(workflow, input, source_of(workflow), run_id)
                    except (WorkflowInputError, CodecError) as exc:
                        return _rejected(workflow, run_id, input, exc)
                    return _run_sync(executor.execute(workflow, run_id))
                runs.check_workflow(store, run_id, workflow.name)
                record = store.get_run(run_id)
                # As in upstream Flux, running a paused run resumes it without input.
                paused = record.state == ExecutionState.PAUSED and bool(
                    runs.pending_pause(store, run_id)
                )
                return _run_sync(executor.execute(workflow, run_id, resume=paused))

    def resume_workflow(
        self, workflow: Workflow[Any], execution_id: str, input: Any
    ) -> WorkflowExecutionContext[Any]:
        with borrowed_store() as store:
            executor = LocalExecutor(store)
            store.get_run(execution_id)  # RunNotFound before a claim is made for nothing
            with executor.claim(execution_id):
                runs.check_workflow(store, execution_id, workflow.name)
                paused = runs.check_resumable(store, execution_id, None)
                if input is not None and not paused:
                    # As `flux resume --input`: an input nothing would receive is a mistake.
                    raise runs.ResumeError(
                        f"run {execution_id} is not waiting at a pause point, so it takes no "
                        f"input; continue it with wf.resume({execution_id!r})"
                    )
                return _run_sync(
                    executor.execute(workflow, execution_id, resume=paused, resume_input=input)
                )

    async def run_task(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        redactor = Redactor(environment_secret_values())

        def resolve(names: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
            with borrowed_store() as store:
                found, missing = SecretStore(store).resolve(names)
            redactor.add(found.values())
            return found, missing

        runner = TaskCallRunner(
            call_id=f"{task.name}-direct",
            name=task.call_name(args, kwargs),
            task=task,
            args=args,
            kwargs=kwargs,
            log=_NoLog(),
            clock=utc_now,
            secrets=resolve,
            rng=random.Random(),
        )
        outcome = await runner.run()
        if outcome.event_type == EventType.TASK_FAILED:
            # The caller's exception, unlike the value, may end up in logs.
            raise failures.to_exception(redactor.redact(outcome.value))
        return values.read_value(outcome.value, values.task_result(task))


def _rejected(
    workflow: Workflow[Any], run_id: str, input: Any, error: Exception
) -> WorkflowExecutionContext[Any]:
    """A run refused for its input: failed, with the error as output, and stored nowhere."""
    info = failures.error_info(error)
    ctx: WorkflowExecutionContext[Any] = WorkflowExecutionContext(
        workflow.name, run_id, input, [], ExecutionState.FAILED, dict(info)
    )
    return ctx


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


_EXECUTOR = EmbeddedExecutor()


def executor() -> EmbeddedExecutor:
    return _EXECUTOR
