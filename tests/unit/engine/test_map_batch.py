"""``task.map(items, batch_size=N)`` in the engine: validation, recorded events, replay.

Batching only adds ``"batch": {"group", "size"}`` to each item's TASK_STARTED
value (the operator packs items of one group into shared pods); every item
stays its own call. The tests play the executor as tests/unit/engine/test_instance.py does.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest

from flux import (
    EventType,
    ExecutionState,
    NonDeterminismError,
    WorkflowExecutionContext,
    task,
    workflow,
)
from flux.engine.commands import ScheduleTask
from flux.engine.failures import error_info, wrap_execution
from flux.engine.instance import WorkflowInstance
from flux.events import ExecutionEvent
from flux.tasks import parallel

T0 = dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC)
RUN = "run-1"


@task
def double(n: int) -> int:
    return 2 * n


@task.with_options(name="item_{0}")
def named(n: int) -> int:
    return n


def new(wf: Any, history: list[ExecutionEvent] | None = None) -> WorkflowInstance:
    instance = WorkflowInstance(
        wf, RUN, list(history or []), clock=lambda: T0, rng=random.Random(7)
    )
    instance.start()
    return instance


def run_with(wf: Any, input: Any) -> WorkflowInstance:
    instance = WorkflowInstance(wf, RUN, [], clock=lambda: T0, rng=random.Random(7), input=input)
    instance.start()
    return instance


def started(instance: WorkflowInstance) -> dict[str, dict[str, Any]]:
    return {e.source_id: e.value for e in instance.events if e.type == EventType.TASK_STARTED}


def mapping(batch_size: int | None, name: str = "mapping") -> Any:
    @workflow.with_options(name=name)
    async def wf(ctx: WorkflowExecutionContext[list[int]]) -> list[int]:
        return await double.map(ctx.input, batch_size=batch_size)

    return wf


def complete_all(instance: WorkflowInstance) -> None:
    for command in instance.take_commands():
        assert isinstance(command, ScheduleTask)
        instance.deliver(EventType.TASK_COMPLETED, command.call_id, 2 * command.args[0])


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("size", "error", "shown"),
    [
        (0, ValueError, "0"),
        (-3, ValueError, "-3"),
        (True, TypeError, "True"),
        (2.0, TypeError, "2.0"),
        ("3", TypeError, "'3'"),
    ],
)
def test_batch_size_must_be_a_positive_int_or_none(size: Any, error: type, shown: str) -> None:
    with pytest.raises(error, match="batch_size") as raised:
        double.map([1, 2], batch_size=size)
    assert shown in str(raised.value)


def test_an_invalid_batch_size_fails_at_the_map_call_not_later() -> None:
    @workflow
    async def wf(ctx: WorkflowExecutionContext[None]) -> Any:
        return await double.map([1, 2, 3], batch_size=0)

    instance = new(wf)
    assert instance.take_commands() == []  # no item was called
    assert instance.state == ExecutionState.FAILED
    assert "batch_size must be a positive int" in instance.ctx.output["message"]


# ------------------------------------------------------------- events


def test_each_item_stays_its_own_call_and_carries_its_batch_group() -> None:
    instance = run_with(mapping(3), [1, 2, 3, 4, 5])
    commands = instance.take_commands()
    assert [c.call_id for c in commands] == [f"double#{i}" for i in range(5)]
    values = started(instance)
    assert [values[f"double#{i}"]["args"] for i in range(5)] == [[1], [2], [3], [4], [5]]
    for value in values.values():
        assert value["batch"] == {"group": "double#0", "size": 3}
    complete_all_resumed(instance, commands)
    assert instance.ctx.output == [2, 4, 6, 8, 10]


def test_without_batch_size_the_events_are_those_of_one_call_per_item() -> None:
    @workflow.with_options(name="mapping")
    async def by_hand(ctx: WorkflowExecutionContext[list[int]]) -> list[int]:
        return await parallel(*(double(n) for n in ctx.input))

    plain, manual, batched = (run_with(wf, [1, 2]) for wf in (mapping(None), by_hand, mapping(2)))
    for instance in (plain, manual, batched):
        complete_all(instance)

    def dump(instance: WorkflowInstance, drop: str | None = None) -> list[str]:
        out = []
        for e in instance.events:
            value = e.value
            if drop and e.type == EventType.TASK_STARTED:
                value = {k: v for k, v in value.items() if k != drop}
            out.append(json.dumps([e.type, e.source_id, e.name, value, e.id], sort_keys=True))
        return out

    assert all("batch" not in v for v in started(plain).values())
    assert dump(plain) == dump(manual)
    # Batching changes nothing but the added "batch" entry.
    assert dump(batched, drop="batch") == dump(plain)


def test_groups_differ_between_map_calls_and_follow_templated_names() -> None:
    @workflow
    async def two_maps(ctx: WorkflowExecutionContext[None]) -> Any:
        return await parallel(
            named.map([10, 11], batch_size=2),
            double.map([1, 2, 3], batch_size=5),
            double.map([4], batch_size=1),
        )

    instance = new(two_maps)
    values = started(instance)
    groups = {call_id: v["batch"]["group"] for call_id, v in values.items()}
    assert groups == {
        "item_10#0": "item_10#0",
        "item_11#0": "item_10#0",
        "double#0": "double#0",
        "double#1": "double#0",
        "double#2": "double#0",
        "double#3": "double#3",
    }
    assert values["double#3"]["batch"]["size"] == 1
    assert values["item_11#0"]["batch"]["size"] == 2


def test_a_map_with_an_item_failing_fails_as_without_batching() -> None:
    instance = run_with(mapping(2), [1, 2, 3])
    instance.take_commands()
    failure = wrap_execution(error_info(ValueError("bad item")))
    instance.deliver(EventType.TASK_COMPLETED, "double#0", 2)
    instance.deliver(EventType.TASK_FAILED, "double#1", failure)
    instance.deliver(EventType.TASK_CANCELLED, "double#2")
    assert instance.state == ExecutionState.FAILED
    assert instance.ctx.output["type"] == "ExecutionError"


# ------------------------------------------------------------- replay


def history_of(batch_size: int | None, outcomes: int) -> list[ExecutionEvent]:
    """A run of ``mapping(batch_size)`` over 4 items with the first ``outcomes`` recorded."""
    instance = run_with(mapping(batch_size), [1, 2, 3, 4])
    for command in instance.take_commands()[:outcomes]:
        assert isinstance(command, ScheduleTask)
        instance.deliver(EventType.TASK_COMPLETED, command.call_id, 2 * command.args[0])
    return list(instance.events)


@pytest.mark.parametrize(
    ("recorded", "replayed"),
    [(3, 3), (3, None), (3, 2), (None, 3)],
    ids=["same", "batching-removed", "size-changed", "batching-added"],
)
def test_replay_ignores_a_changed_batch_size_like_other_options(
    recorded: int | None, replayed: int | None
) -> None:
    history = history_of(recorded, outcomes=2)
    instance = new(mapping(replayed), history)
    assert instance.state == ExecutionState.RUNNING
    assert instance.take_events() == []  # nothing re-recorded: history keeps its batch
    commands = instance.take_commands()
    assert [(c.call_id, c.resumed) for c in commands] == [("double#2", True), ("double#3", True)]
    complete_all_resumed(instance, commands)
    assert instance.ctx.output == [2, 4, 6, 8]
    recorded_batch = [e.value.get("batch") for e in instance.events if e.type == "TASK_STARTED"]
    expected = None if recorded is None else {"group": "double#0", "size": recorded}
    assert recorded_batch == [expected] * 4


def complete_all_resumed(instance: WorkflowInstance, commands: list[Any]) -> None:
    for command in commands:
        instance.deliver(EventType.TASK_COMPLETED, command.call_id, 2 * command.args[0])


def test_replay_records_the_same_groups_for_calls_made_after_it() -> None:
    @workflow.with_options(name="stages")
    async def stages(ctx: WorkflowExecutionContext[None]) -> Any:
        first = await double.map([1, 2], batch_size=2)
        return await double.map(first, batch_size=2)

    original = new(stages)
    complete_all(original)
    complete_all(original)
    assert original.ctx.output == [4, 8]

    # Crash after the first map: the replay records the second map itself.
    cut = next(i for i, e in enumerate(original.events) if e.source_id == "double#2")
    replay = new(stages, original.events[:cut])
    complete_all(replay)
    assert replay.ctx.output == [4, 8]
    assert [(e.type, e.source_id, e.value) for e in replay.events] == [
        (e.type, e.source_id, e.value) for e in original.events
    ]
    assert started(replay)["double#3"]["batch"] == {"group": "double#2", "size": 2}


def test_changed_arguments_still_diverge_with_batching() -> None:
    history = history_of(3, outcomes=4)[:-1]

    @workflow.with_options(name="mapping")
    async def other(ctx: WorkflowExecutionContext[list[int]]) -> list[int]:
        return await double.map([n + 1 for n in ctx.input], batch_size=3)

    instance = new(other, history)
    assert instance.state == ExecutionState.FAILED
    assert instance.ctx.output["type"] == NonDeterminismError.__name__
