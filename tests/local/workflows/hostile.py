"""Workflows for tests/local/test_hostile_values.py: values the store cannot take,
and user values shaped like Flux-tagged objects."""

from __future__ import annotations

import math
from typing import Any

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


def unstorable(kind: str) -> Any:
    """A value of ``kind`` that the codec must refuse or tag."""
    match kind:
        case "surrogate":
            return "name-\udcff.txt"  # what os.listdir gives for a non-UTF-8 file name
        case "factorial":
            return math.factorial(2000)
        case "nan":
            return float("nan")
        case "deep":
            value: Any = []
            for _ in range(1000):
                value = [value]
            return value
    raise ValueError(kind)


@task
async def produce(kind: str) -> Any:
    return unstorable(kind)


async def safe_value(kind: str) -> str:
    return f"fallback for {kind}"


@task.with_options(fallback=safe_value)
async def produce_or_fall_back(kind: str) -> Any:
    return unstorable(kind)


@workflow
async def task_returns(ctx: WorkflowExecutionContext[str]) -> Any:
    return await produce(ctx.input)


@workflow
async def task_falls_back(ctx: WorkflowExecutionContext[str]) -> Any:
    return await produce_or_fall_back(ctx.input)


@workflow
async def workflow_returns(ctx: WorkflowExecutionContext[str]) -> Any:
    return unstorable(ctx.input)


@task
async def describe(value: Any) -> str:
    return type(value).__name__


@workflow
async def echo(ctx: WorkflowExecutionContext[Any]) -> Any:
    """The input, what a task makes of it, and what a resume brings."""
    kind = await describe(ctx.input)
    resumed = await pause("more", output=None)
    return {"input": ctx.input, "task_saw": kind, "resumed": resumed}


@task
async def fail_naming_a_file() -> None:
    # As open() reports a file whose name is not UTF-8.
    raise FileNotFoundError(2, "No such file or directory", "name-\udcff.txt")


@workflow
async def task_error_with_surrogate(ctx: WorkflowExecutionContext[Any]) -> Any:
    return await fail_naming_a_file()
