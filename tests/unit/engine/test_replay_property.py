"""Property: replaying any prefix of a history, then delivering the rest, changes nothing.

A generated workflow makes sequential calls, parallel groups (raising or not),
built-in draws and sleeps; every call succeeds or fails at random, and the
executor delivers outcomes of concurrent calls in a random order. For the full
history this produced, a new instance that replays any prefix and then receives
the remaining outcomes in their recorded order must record exactly the same
events (types, sources, names, values) and end in the same state and output.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flux import (
    EventType,
    ExecutionError,
    ExecutionState,
    WorkflowExecutionContext,
    task,
    workflow,
)
from flux.engine.commands import CancelCall, ScheduleTask, StartTimer
from flux.engine.failures import error_info, wrap_execution
from flux.engine.instance import WorkflowInstance
from flux.events import TASK_OUTCOME_EVENTS, ExecutionEvent
from flux.tasks import parallel, randint, sleep

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
RUN = "prop-run"


class StepFailed(Exception):
    pass


@task.with_options(name="step_{0}")
def step(index: int) -> int:
    raise AssertionError("the tests deliver outcomes; task bodies never run")


@workflow
async def generated(ctx: WorkflowExecutionContext[list[Any]]) -> list[Any]:
    """Interprets its input: [["call", i] | ["group", [i, ...], strict] | ["draw"] | ["nap"]]."""
    results: list[Any] = []
    for item in ctx.input:
        kind = item[0]
        try:
            if kind == "call":
                results.append(await step(item[1]))
            elif kind == "group":
                calls = [step(i) for i in item[1]]
                results.append(await parallel(*calls, raise_on_error=item[2]))
            elif kind == "draw":
                results.append(await randint(0, 10**6))
            else:
                await sleep(30)
                results.append("rested")
        except ExecutionError as error:
            results.append(f"failed: {error.inner_exception}")
    return results


# ---------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Scenario:
    program: list[list[Any]]
    outcomes: dict[int, int | None]  # call index -> value, or None for a failure


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    program: list[list[Any]] = []
    outcomes: dict[int, int | None] = {}
    index = 0
    outcome = st.one_of(st.none(), st.integers(-1000, 1000))
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["call", "call", "group", "group", "draw", "nap"]))
        if kind == "call":
            program.append(["call", index])
            outcomes[index] = draw(outcome)
            index += 1
        elif kind == "group":
            size = draw(st.integers(0, 4))
            members = list(range(index, index + size))
            for member in members:
                outcomes[member] = draw(outcome)
            index += size
            program.append(["group", members, draw(st.booleans())])
        else:
            program.append([kind])
    return Scenario(program, outcomes)


# -------------------------------------------------------------------- driver


DRAW_SEED = 2024


def draw_source(history: list[ExecutionEvent]) -> random.Random:
    """The run's source of randomness, past the draws ``history`` already recorded.

    A draw that is not in history yet is made afresh; giving the replay the same
    source makes it draw what the original run drew, so whole histories compare.
    """
    rng = random.Random(DRAW_SEED)
    for event in history:
        if event.type == EventType.TASK_COMPLETED and event.name == "randint":
            rng.randint(0, 10**6)
    return rng


def new_instance(history: list[ExecutionEvent], scenario: Scenario) -> WorkflowInstance:
    instance = WorkflowInstance(
        generated,
        RUN,
        history,
        clock=lambda: T0,
        rng=draw_source(history),
        input=scenario.program,
    )
    instance.start()
    return instance


def outcome_of(scenario: Scenario, call_id: str) -> tuple[EventType, Any]:
    if call_id.startswith("sleep#"):
        return EventType.TASK_COMPLETED, None
    index = int(call_id.removeprefix("step_").partition("#")[0])
    value = scenario.outcomes[index]
    if value is None:
        return EventType.TASK_FAILED, wrap_execution(error_info(StepFailed(f"step {index}")))
    return EventType.TASK_COMPLETED, value


def run_to_end(scenario: Scenario, order: random.Random) -> WorkflowInstance:
    """Play the executor: deliver outcomes of whatever is in flight, in a random order."""
    instance = new_instance([], scenario)
    in_flight: list[str] = []
    cancelling: list[str] = []
    while True:
        for command in instance.take_commands():
            match command:
                case ScheduleTask() | StartTimer():
                    in_flight.append(command.call_id)
                case CancelCall():
                    if command.call_id in in_flight:
                        in_flight.remove(command.call_id)
                    cancelling.append(command.call_id)
        if not in_flight and not cancelling:
            return instance
        pick = order.randrange(len(in_flight) + len(cancelling))
        if pick < len(in_flight):
            call_id = in_flight.pop(pick)
            instance.deliver(*_with_id(outcome_of(scenario, call_id), call_id))
        else:
            instance.deliver(EventType.TASK_CANCELLED, cancelling.pop(pick - len(in_flight)))


def _with_id(outcome: tuple[EventType, Any], call_id: str) -> tuple[EventType, str, Any]:
    return outcome[0], call_id, outcome[1]


def replay_then_continue(
    history: list[ExecutionEvent], cut: int, scenario: Scenario
) -> WorkflowInstance:
    instance = new_instance(history[:cut], scenario)
    for event in history[cut:]:
        # Outcomes of calls in flight come from the executor; built-ins record their own.
        if event.type in TASK_OUTCOME_EVENTS and event.source_id in instance.in_flight():
            instance.deliver(event.type, event.source_id, event.value)
    return instance


def comparable(events: list[ExecutionEvent]) -> list[tuple[Any, ...]]:
    return [(e.id, e.type, e.source_id, e.name, e.value) for e in events]


def cut_points(history: list[ExecutionEvent]) -> list[int]:
    """Every prefix length an executor can commit (a built-in's two events go together)."""
    points = []
    for cut in range(1, len(history) + 1):
        last = history[cut - 1]
        splits_builtin = (
            last.type == EventType.TASK_STARTED
            and last.name == "randint"
            and cut < len(history)
            and history[cut].source_id == last.source_id
        )
        if not splits_builtin:
            points.append(cut)
    return points


# ---------------------------------------------------------------- properties

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(scenario=scenarios(), order=st.randoms(use_true_random=False))
def test_replaying_any_prefix_reaches_the_same_end(
    scenario: Scenario, order: random.Random
) -> None:
    original = run_to_end(scenario, order)
    assert original.state.is_final
    history = list(original.events)
    expected = comparable(history)
    for cut in cut_points(history):
        replayed = replay_then_continue(history, cut, scenario)
        assert comparable(replayed.events) == expected, f"replay of the first {cut} events"
        assert replayed.state == original.state
        assert replayed.ctx.output == original.ctx.output


@SETTINGS
@given(scenario=scenarios(), order=st.randoms(use_true_random=False))
def test_the_original_run_matches_the_program(scenario: Scenario, order: random.Random) -> None:
    """A sanity check of the generator and driver, so the property above is not vacuous."""
    instance = run_to_end(scenario, order)
    assert instance.state == ExecutionState.COMPLETED
    output = instance.ctx.output
    assert len(output) == len(scenario.program)
    for item, result in zip(scenario.program, output, strict=True):
        if item[0] == "call":
            value = scenario.outcomes[item[1]]
            assert result == (value if value is not None else f"failed: step {item[1]}")
        elif item[0] == "group" and not item[2]:
            assert result == [scenario.outcomes[i] for i in item[1]]
        elif item[0] == "group":
            failed = [i for i in item[1] if scenario.outcomes[i] is None]
            if not failed:
                assert result == [scenario.outcomes[i] for i in item[1]]
            else:
                assert result in {f"failed: step {i}" for i in failed}
        elif item[0] == "draw":
            assert 0 <= result <= 10**6
        else:
            assert result == "rested"
    # Every call that started also ended, one way or another.
    started = {e.source_id for e in instance.events if e.type == EventType.TASK_STARTED}
    ended = {e.source_id for e in instance.events if e.type in TASK_OUTCOME_EVENTS}
    assert started == ended


@SETTINGS
@given(scenario=scenarios(), order=st.randoms(use_true_random=False))
def test_replaying_the_whole_history_records_and_asks_for_nothing(
    scenario: Scenario, order: random.Random
) -> None:
    original = run_to_end(scenario, order)
    replayed = WorkflowInstance(
        generated, RUN, list(original.events), clock=lambda: T0, rng=random.Random(999)
    )
    replayed.start()
    assert replayed.take_events() == []
    assert replayed.take_commands() == []
    assert replayed.state == original.state
    assert replayed.ctx.output == original.ctx.output
