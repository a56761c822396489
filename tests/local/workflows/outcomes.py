"""Small workflows for the CLI tests: one per outcome the CLI reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from flux import ExecutionError, WorkflowExecutionContext, task, workflow
from flux.tasks import Graph, parallel, pause


@task
async def say_hello(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def greet(ctx: WorkflowExecutionContext[str]) -> str:
    return await say_hello(ctx.input)


@task
async def explode(message: str) -> None:
    raise ValueError(message)


@workflow
async def boom(ctx: WorkflowExecutionContext[Any]) -> None:
    await explode("boom")


@workflow
async def approval(ctx: WorkflowExecutionContext[Any]) -> dict[str, Any]:
    decision = await pause("approve", output={"amount": 3})
    return {"decision": decision}


@workflow
async def bad_graph(ctx: WorkflowExecutionContext[Any]) -> Any:
    graph = Graph("broken").add_node("a", say_hello).add_edge("a", "ghost").start_with("a")
    return await graph(ctx.input)


@task.with_options(secret_requests=["API_TOKEN"])
async def token_length(secrets: dict[str, str]) -> int:
    return len(secrets["API_TOKEN"])


@workflow.with_options(secret_requests=["API_TOKEN"])
async def needs_secret(ctx: WorkflowExecutionContext[Any]) -> int:
    return await token_length()


@task.with_options(retry_max_attempts=2, retry_delay=0.05)
def flaky(path: str) -> int:
    trace = Path(path)
    attempt = len(trace.read_text().splitlines()) + 1 if trace.exists() else 1
    with trace.open("a") as out:
        out.write(f"{attempt}\n")
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


@workflow
async def retrying(ctx: WorkflowExecutionContext[str]) -> int:
    return await flaky(ctx.input)


@task
async def nap(index: int) -> int:
    await asyncio.sleep(0.4)
    return index


@workflow
async def slow(ctx: WorkflowExecutionContext[int]) -> list[int]:
    return [await nap(i) for i in range(ctx.input)]


def undo(path: str) -> None:
    with Path(path).open("a") as out:
        out.write("rolled back\n")


@task.with_options(rollback=undo)
async def write_then_wait(path: str) -> None:
    await asyncio.to_thread(Path(path).write_text, "started\n")
    # Async, so that cancelling it stops it at once (a thread would sleep on).
    await asyncio.sleep(30)


@workflow
async def stuck(ctx: WorkflowExecutionContext[str]) -> None:
    """One long task with a rollback: to cancel while it runs or after a crash."""
    await write_then_wait(ctx.input)


@task
async def fail_at_once() -> None:
    raise ValueError("fails before the other branch starts")


@workflow
async def abandoned(ctx: WorkflowExecutionContext[Any]) -> str:
    try:
        await parallel(fail_at_once(), nap(0))
    except ExecutionError:
        return "caught"
    return "not raised"
