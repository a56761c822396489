"""Workflows whose tasks misbehave, and small ones to race or kill, for the hostile-case tests."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause, sleep


def _mark(path: str, line: str) -> None:
    with Path(path).open("a") as out:
        out.write(line + "\n")


@task
def exits(code: int) -> None:
    sys.exit(code)


@workflow
async def calls_exit(ctx: WorkflowExecutionContext[int]) -> None:
    await exits(ctx.input)


def saved() -> str:
    return "fallback ran"


@task.with_options(fallback=saved)
async def exits_async() -> str:
    sys.exit(3)


@workflow
async def exit_with_fallback(ctx: WorkflowExecutionContext[Any]) -> str:
    return await exits_async()


@task
async def interrupts() -> None:
    raise KeyboardInterrupt


@workflow
async def raises_interrupt(ctx: WorkflowExecutionContext[Any]) -> None:
    await interrupts()


@task
def closes_generator() -> None:
    raise GeneratorExit


@workflow
async def raises_generator_exit(ctx: WorkflowExecutionContext[Any]) -> None:
    await closes_generator()


@task
def chatty() -> str:
    print("task output on stdout")
    logging.getLogger("chatty").warning("task log line")
    os.system("echo subprocess output on stdout")
    return "result"


@workflow
async def prints(ctx: WorkflowExecutionContext[Any]) -> str:
    return await chatty()


def quick_fallback() -> str:
    return "fallback"


@task.with_options(timeout=1, fallback=quick_fallback)
def blocks() -> str:
    time.sleep(30)
    return "late"


@workflow
async def times_out(ctx: WorkflowExecutionContext[Any]) -> str:
    return await blocks()


@task
def count_and_wait(path: str) -> str:
    """Marks each execution, then holds the run long enough to race a second process."""
    _mark(path, "ran")
    time.sleep(1.5)
    return "done"


@workflow
async def counted(ctx: WorkflowExecutionContext[str]) -> str:
    return await count_and_wait(ctx.input)


@task
def mark(path: str, line: str) -> None:
    _mark(path, line)


@workflow
async def mark_sleep_mark(ctx: WorkflowExecutionContext[str]) -> str:
    """A durable sleep between two marks: killed while sleeping, no task is in flight."""
    await mark(ctx.input, "first")
    await sleep(3)
    await mark(ctx.input, "second")
    return "done"


@workflow
async def gate(ctx: WorkflowExecutionContext[Any]) -> Any:
    return {"resumed_with": await pause("gate")}


@workflow
async def other_gate(ctx: WorkflowExecutionContext[Any]) -> Any:
    return {"other": await pause("gate")}


@workflow
async def size(ctx: WorkflowExecutionContext[dict[str, Any]]) -> int:
    return len(ctx.input["blob"])


@task
def count_and_hold(path: str) -> str:
    _mark(path, "ran")
    time.sleep(5)
    return "done"


@workflow
async def counted_long(ctx: WorkflowExecutionContext[str]) -> str:
    """Like counted, held long enough for several processes to knock meanwhile."""
    return await count_and_hold(ctx.input)


@workflow
async def body_exits(ctx: WorkflowExecutionContext[Any]) -> None:
    sys.exit(3)


@workflow
async def body_interrupts(ctx: WorkflowExecutionContext[Any]) -> None:
    raise KeyboardInterrupt
