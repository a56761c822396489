"""The durable-replay core (flux.engine.instance.WorkflowInstance), with no executor.

The tests play the executor: they start an instance, take its commands and
deliver outcomes, with a fixed clock and a seeded random generator. No I/O.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import pytest

from flux import (
    EventType,
    ExecutionError,
    ExecutionState,
    NonDeterminismError,
    WorkflowExecutionContext,
    task,
    workflow,
)
from flux.engine.commands import CancelCall, ScheduleTask, StartTimer
from flux.engine.failures import error_info, wrap_execution
from flux.engine.instance import WorkflowInstance
from flux.events import ExecutionEvent
from flux.tasks import parallel, pause, randint, sleep, uuid4

T0 = dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC)
RUN = "run-1"


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def mul(a: int, b: int) -> int:
    return a * b


@workflow
async def two_steps(ctx: WorkflowExecutionContext[int]) -> int:
    x = await add(ctx.input, 1)
    return await add(x, 10)


def new(wf: Any, history: list[ExecutionEvent] | None = None, **kwargs: Any) -> WorkflowInstance:
    kwargs.setdefault("clock", lambda: T0)
    kwargs.setdefault("rng", random.Random(7))
    instance = WorkflowInstance(wf, RUN, list(history or []), **kwargs)
    instance.start()
    return instance


def shape(events: list[ExecutionEvent]) -> list[tuple[str, str, str]]:
    return [(e.type.value, e.source_id, e.name) for e in events]


def recorded_two_steps() -> list[ExecutionEvent]:
    instance = new(two_steps, input=5)
    instance.deliver(EventType.TASK_COMPLETED, "add#0", 6)
    instance.deliver(EventType.TASK_COMPLETED, "add#1", 16)
    assert instance.state == ExecutionState.COMPLETED
    return list(instance.events)


def failure_of(instance: WorkflowInstance) -> dict[str, Any]:
    assert instance.state == ExecutionState.FAILED
    [failed] = [e for e in instance.events if e.type == EventType.WORKFLOW_FAILED]
    assert instance.ctx.output == failed.value
    return failed.value  # type: ignore[no-any-return]


# ------------------------------------------------------------- a fresh run


def test_a_run_step_by_step() -> None:
    instance = new(two_steps, input=5)
    assert instance.state == ExecutionState.RUNNING
    assert shape(instance.take_events()) == [
        ("WORKFLOW_STARTED", RUN, "two_steps"),
        ("TASK_STARTED", "add#0", "add"),
    ]
    [command] = instance.take_commands()
    assert isinstance(command, ScheduleTask)
    assert (command.call_id, command.name, command.args, command.resumed) == (
        "add#0",
        "add",
        (5, 1),
        False,
    )
    assert command.task is add
    assert instance.in_flight() == ["add#0"]

    instance.deliver(EventType.TASK_COMPLETED, "add#0", 6)
    assert shape(instance.take_events()) == [
        ("TASK_COMPLETED", "add#0", "add"),
        ("TASK_STARTED", "add#1", "add"),
    ]
    [command] = instance.take_commands()
    assert isinstance(command, ScheduleTask)
    assert command.args == (6, 10)

    instance.deliver(EventType.TASK_COMPLETED, "add#1", 16)
    assert shape(instance.take_events()) == [
        ("TASK_COMPLETED", "add#1", "add"),
        ("WORKFLOW_COMPLETED", RUN, "two_steps"),
    ]
    assert instance.take_commands() == []
    assert instance.state == ExecutionState.COMPLETED
    assert instance.ctx.output == 16
    assert [e.id for e in instance.events] == [1, 2, 3, 4, 5, 6]
    assert all(e.time == T0 for e in instance.events)
    started = instance.events[1].value
    assert (started["args"], started["kwargs"]) == ([5, 1], {})
    assert started["task"] == f"{__name__}:add"


def test_a_failed_task_raises_execution_error_in_the_workflow() -> None:
    @workflow
    async def catches(ctx: WorkflowExecutionContext[Any]) -> str:
        try:
            await add(1, 2)
        except ExecutionError as error:
            return f"caught {type(error.inner_exception).__name__}: {error.inner_exception}"
        return "no error"

    instance = new(catches)
    failure = wrap_execution(error_info(LookupError("missing")))
    instance.deliver(EventType.TASK_FAILED, "add#0", failure)
    assert instance.ctx.output == "caught LookupError: missing"
    [failed] = [e for e in instance.events if e.type == EventType.TASK_FAILED]
    assert failed.value == failure


# ------------------------------------------------------------------ replay


def test_replay_of_a_history_returns_recorded_outcomes_without_new_commands() -> None:
    history = recorded_two_steps()
    before_end = history[:-1]  # everything but WORKFLOW_COMPLETED
    instance = new(two_steps, before_end, rng=random.Random(99))
    assert instance.take_commands() == []
    assert shape(instance.take_events()) == [("WORKFLOW_COMPLETED", RUN, "two_steps")]
    assert instance.ctx.input == 5  # read from WORKFLOW_STARTED
    assert instance.ctx.output == 16


def test_replay_of_a_finished_history_records_nothing() -> None:
    history = recorded_two_steps()
    instance = new(two_steps, history)
    assert instance.take_commands() == []
    assert instance.take_events() == []
    assert instance.state == ExecutionState.COMPLETED
    assert instance.ctx.output == 16


def test_replay_reissues_calls_that_were_in_flight() -> None:
    history = recorded_two_steps()[:4]  # add#1 started, no outcome yet
    instance = new(two_steps, history)
    assert instance.take_events() == []
    [command] = instance.take_commands()
    assert isinstance(command, ScheduleTask)
    assert (command.call_id, command.args, command.resumed) == ("add#1", (6, 10), True)
    instance.deliver(EventType.TASK_COMPLETED, "add#1", 16)
    assert instance.ctx.output == 16


def test_a_history_must_begin_with_workflow_started() -> None:
    history = recorded_two_steps()[1:]
    with pytest.raises(ValueError, match="WORKFLOW_STARTED"):
        WorkflowInstance(two_steps, RUN, history, clock=lambda: T0, rng=random.Random())


# ------------------------------------------------------- non-determinism


@workflow.with_options(name="two_steps")
async def other_task(ctx: WorkflowExecutionContext[int]) -> int:
    x = await mul(ctx.input, 1)
    return await add(x, 10)


@workflow.with_options(name="two_steps")
async def other_args(ctx: WorkflowExecutionContext[int]) -> int:
    x = await add(ctx.input, 2)
    return await add(x, 10)


@workflow.with_options(name="two_steps")
async def fewer_calls(ctx: WorkflowExecutionContext[int]) -> int:
    return await add(ctx.input, 1)


@workflow.with_options(name="two_steps")
async def catches_everything(ctx: WorkflowExecutionContext[int]) -> str:
    try:
        await mul(ctx.input, 1)
    except Exception as error:
        return f"swallowed {type(error).__name__}"
    return "ran"


@pytest.mark.parametrize(
    ("changed", "phrases"),
    [
        (other_task, ["history records add#0 (add)", "now calls mul#0 (mul)"]),
        (other_args, ["add#0 (add) is now called with other arguments"]),
        (fewer_calls, ["history records add#1 (add)", "ended without making that call"]),
        (catches_everything, ["history records add#0 (add)", "now calls mul#0 (mul)"]),
    ],
    ids=["different-task", "different-args", "fewer-calls", "workflow-catches-it"],
)
def test_a_changed_workflow_fails_with_a_non_determinism_error(
    changed: Any, phrases: list[str]
) -> None:
    history = recorded_two_steps()[:-1]
    instance = new(changed, history)
    failure = failure_of(instance)
    assert failure["type"] == NonDeterminismError.__name__
    assert failure["module"] == "flux.errors"
    assert failure["message"].startswith("workflow 'two_steps' is not deterministic: ")
    for phrase in phrases:
        assert phrase in failure["message"]
    assert instance.take_commands() == []  # nothing of the diverged replay is carried out
    new_events = instance.take_events()
    assert [e.type for e in new_events] == [EventType.WORKFLOW_FAILED]


def test_divergence_while_a_call_is_in_flight() -> None:
    history = recorded_two_steps()[:2]  # add#0 started, no outcome
    instance = new(other_args, history)
    assert failure_of(instance)["type"] == NonDeterminismError.__name__
    assert instance.take_commands() == []


def test_an_outcome_for_a_call_the_workflow_no_longer_makes() -> None:
    @workflow.with_options(name="two_steps")
    async def no_calls(ctx: WorkflowExecutionContext[int]) -> int:
        return ctx.input

    # Only the outcome (not the start) of add#0 is left: a corrupt or foreign history.
    history = [e for e in recorded_two_steps()[:3] if e.type != EventType.TASK_STARTED]
    instance = new(no_calls, history)
    failure = failure_of(instance)
    assert "history records an outcome for add#0" in failure["message"]


# --------------------------------------------------------------- built-ins


@workflow
async def draws(ctx: WorkflowExecutionContext[Any]) -> dict[str, Any]:
    number = await randint(1, 1_000_000)
    ident = await uuid4()
    resumed = await pause("check", output=number)
    return {"number": number, "id": ident, "resumed": resumed}


def test_builtins_are_computed_with_the_given_rng_and_replayed_from_history() -> None:
    first = new(draws, rng=random.Random(1))
    expected = random.Random(1)
    number = expected.randint(1, 1_000_000)
    assert first.state == ExecutionState.PAUSED
    assert first.pending_pause_name() == "check"
    assert first.take_commands() == []  # built-ins and pauses need no executor
    recorded = [e.value for e in first.events if e.source_id == "randint#0"]
    assert recorded == [None, number]

    replayed = new(draws, list(first.events), rng=random.Random(2))
    assert replayed.state == ExecutionState.PAUSED
    assert replayed.take_events() == []
    replayed.resume("yes")
    assert replayed.ctx.output["number"] == number
    assert replayed.ctx.output["id"].version == 4
    assert replayed.ctx.output["resumed"] == "yes"
    assert shape(replayed.take_events()) == [
        ("WORKFLOW_RESUMED", RUN, "draws"),
        ("TASK_RESUMED", "pause#0", "check"),
        ("WORKFLOW_COMPLETED", RUN, "draws"),
    ]


def test_resume_of_an_instance_that_is_not_paused_is_an_error() -> None:
    instance = new(two_steps, input=1)
    with pytest.raises(RuntimeError, match="not paused"):
        instance.resume("x")


# ------------------------------------------------------------------ timers


@workflow
async def naps(ctx: WorkflowExecutionContext[Any]) -> str:
    await sleep(dt.timedelta(minutes=5))
    return "rested"


def test_sleep_becomes_a_timer_and_replay_keeps_its_original_deadline() -> None:
    instance = new(naps)
    [timer] = instance.take_commands()
    assert timer == StartTimer("sleep#0", T0 + dt.timedelta(minutes=5))
    history = list(instance.events)

    later = T0 + dt.timedelta(minutes=3)
    replayed = new(naps, history, clock=lambda: later)
    [timer] = replayed.take_commands()
    assert timer == StartTimer("sleep#0", T0 + dt.timedelta(minutes=5))
    replayed.deliver(EventType.TASK_COMPLETED, "sleep#0")
    assert replayed.ctx.output == "rested"


def test_workflow_code_cannot_use_asyncio_timers() -> None:
    @workflow
    async def uses_asyncio_sleep(ctx: WorkflowExecutionContext[Any]) -> None:
        await asyncio.sleep(1)

    failure = failure_of(new(uses_asyncio_sleep))
    assert "use flux.tasks.sleep" in failure["message"]


# ------------------------------------------------ parallel and cancellation


@workflow
async def fan_out(ctx: WorkflowExecutionContext[Any]) -> Any:
    return await parallel(add(1, 1), add(2, 2), add(3, 3))


def test_a_failure_in_parallel_cancels_the_other_calls() -> None:
    instance = new(fan_out)
    assert [c.call_id for c in instance.take_commands()] == ["add#0", "add#1", "add#2"]
    instance.deliver(EventType.TASK_COMPLETED, "add#0", 2)
    instance.deliver(EventType.TASK_FAILED, "add#1", wrap_execution(error_info(OSError("x"))))
    assert instance.take_commands() == [CancelCall("add#2")]
    # The workflow moves on only once the cancellation (and any rollback) is recorded.
    assert instance.state == ExecutionState.RUNNING
    instance.deliver(EventType.TASK_CANCELLED, "add#2")
    assert instance.state == ExecutionState.FAILED
    assert instance.events[-1].type == EventType.WORKFLOW_FAILED
    assert [e.type for e in instance.call_events("add#2")] == [
        EventType.TASK_STARTED,
        EventType.TASK_CANCELLED,
    ]


def test_cancel_stops_the_workflow_and_its_calls() -> None:
    instance = new(fan_out)
    instance.take_commands()
    instance.cancel()
    cancels = sorted(c.call_id for c in instance.take_commands() if isinstance(c, CancelCall))
    assert cancels == ["add#0", "add#1", "add#2"]
    # Cancelled once every call's cancellation (rollback included) is recorded.
    for call_id in cancels:
        assert instance.state == ExecutionState.RUNNING
        instance.deliver(EventType.TASK_CANCELLED, call_id)
    assert instance.state == ExecutionState.CANCELLED
    assert instance.events[-1].type == EventType.WORKFLOW_CANCELLED


def test_a_replay_cancels_the_workflow_where_the_run_was_cancelled() -> None:
    instance = new(fan_out)
    instance.take_commands()
    cancelled_after = instance.events[-1].id
    instance.cancel()
    # add#0 finished before its cancellation took effect; add#1 was cancelled.
    instance.deliver(EventType.TASK_COMPLETED, "add#0", 2)
    instance.deliver(EventType.TASK_CANCELLED, "add#1")
    history = list(instance.events)

    replayed = WorkflowInstance(fan_out, RUN, history, clock=lambda: T0, rng=random.Random(7))
    replayed.start(cancelled_after=cancelled_after)
    assert replayed.take_commands() == [CancelCall("add#2")]
    replayed.deliver(EventType.TASK_CANCELLED, "add#2")
    assert replayed.state == ExecutionState.CANCELLED

    # Without it, the replay is of a run nobody cancelled: add#1's cancellation is
    # then a failure inside the workflow, and the run fails.
    plain = new(fan_out, history)
    plain.take_commands()
    plain.deliver(EventType.TASK_CANCELLED, "add#2")
    assert plain.state == ExecutionState.FAILED


def test_parallel_outcomes_in_any_order_give_results_in_call_order() -> None:
    instance = new(fan_out)
    instance.take_commands()
    for call_id, value in [("add#2", 6), ("add#0", 2), ("add#1", 4)]:
        instance.deliver(EventType.TASK_COMPLETED, call_id, value)
    assert instance.ctx.output == [2, 4, 6]
    # Replaying the history delivers the outcomes in the same (recorded) order.
    replayed = new(fan_out, list(instance.events)[:-1])
    assert replayed.ctx.output == [2, 4, 6]
    assert replayed.take_commands() == []
