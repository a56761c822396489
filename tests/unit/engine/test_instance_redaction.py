"""The instance masks secret values on their way into history, and the workflow sees
what history keeps, so a live run and its replay take the same path."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from flux import EventType, ExecutionState, WorkflowExecutionContext, task, workflow
from flux.engine.failures import error_info, wrap_execution
from flux.engine.instance import WorkflowInstance
from flux.events import ExecutionEvent
from flux.redaction import MASK, Redactor

T0 = dt.datetime(2024, 6, 1, 8, 0, tzinfo=dt.UTC)
TOKEN = "instance-s3cret"


@task
def fetch() -> str:
    return "anything"


@task.with_options(name="use_{value}")
def use(value: str) -> str:
    return value


@workflow.with_options(secret_requests=["TOKEN"])
async def leaky(ctx: WorkflowExecutionContext[None]) -> dict[str, str]:
    fetched = await fetch()
    used = await use(ctx.secrets["TOKEN"])
    return {"fetched": fetched, "used": used, "own": ctx.secrets["TOKEN"]}


@workflow
async def failing(ctx: WorkflowExecutionContext[None]) -> None:
    await fetch()


def new(wf: Any, history: list[ExecutionEvent] | None = None, **kwargs: Any) -> WorkflowInstance:
    instance = WorkflowInstance(
        wf, "run-1", list(history or []), clock=lambda: T0, rng=random.Random(1), **kwargs
    )
    instance.start()
    return instance


def test_outcomes_arguments_names_and_output_are_masked_and_replay_matches() -> None:
    instance = new(leaky, secrets={"TOKEN": TOKEN})
    instance.deliver(EventType.TASK_COMPLETED, "fetch#0", f"got {TOKEN}")
    [call_id] = instance.in_flight()
    assert call_id == f"use_{MASK}#0"
    instance.deliver(EventType.TASK_COMPLETED, call_id, TOKEN)
    assert instance.state == ExecutionState.COMPLETED
    expected = {"fetched": f"got {MASK}", "used": MASK, "own": MASK}
    assert instance.ctx.output == expected
    history = list(instance.events)
    assert TOKEN not in json.dumps([e.to_dict() for e in history])

    replayed = new(leaky, history, secrets={"TOKEN": TOKEN})
    assert replayed.state == ExecutionState.COMPLETED
    assert replayed.events == history  # nothing new: no divergence, no second end


def test_a_failure_is_masked_in_history_and_in_the_context() -> None:
    instance = new(failing, redactor=Redactor([TOKEN]))
    error = wrap_execution(error_info(ValueError(f"bad {TOKEN}")))
    instance.deliver(EventType.TASK_FAILED, "fetch#0", error)
    assert instance.state == ExecutionState.FAILED
    assert TOKEN not in json.dumps(instance.ctx.output)
    assert TOKEN not in json.dumps([e.to_dict() for e in instance.events])


def test_values_added_to_the_redactor_during_the_run_are_masked_from_then_on() -> None:
    redactor = Redactor()
    instance = new(failing, redactor=redactor)
    redactor.add([TOKEN])  # as the executor does when it resolves a task's secrets
    instance.deliver(EventType.TASK_COMPLETED, "fetch#0", TOKEN)
    assert instance.events[-2].value == MASK


def test_without_secrets_recorded_values_are_the_objects_delivered() -> None:
    instance = new(failing)
    value = {"a": ["b", 1]}
    instance.deliver(EventType.TASK_COMPLETED, "fetch#0", value)
    assert instance.events[-2].value is value
