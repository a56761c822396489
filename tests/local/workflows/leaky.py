"""Workflows whose tasks let their secret escape every way they can, for redaction tests.

TOKEN is a task secret (from the encrypted store or FLUX_SECRET_TOKEN); the
workflow ``output`` requests it itself.
"""

from __future__ import annotations

import sys
from typing import Any

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


@task.with_options(secret_requests=["TOKEN"])
def give(secrets: dict[str, str]) -> dict[str, Any]:
    token = secrets["TOKEN"]
    return {"token": token, token: "as a key", "nested": [f"Bearer {token}"]}


@task
def echo(value: Any) -> Any:
    return value


@workflow
async def returned(ctx: WorkflowExecutionContext[Any]) -> Any:
    given = await give()
    # What the workflow got is passed on as an argument, and returned.
    return await echo(given)


@task.with_options(secret_requests=["TOKEN"])
def leak_in_error(secrets: dict[str, str]) -> None:
    raise ValueError(f"login refused for token {secrets['TOKEN']!r}")


@workflow
async def raised(ctx: WorkflowExecutionContext[Any]) -> None:
    await leak_in_error()


@task.with_options(secret_requests=["TOKEN"])
def chatty(secrets: dict[str, str]) -> int:
    token = secrets["TOKEN"]
    print(f"stdout: using {token}")
    print(f"stderr: using {token}", file=sys.stderr)
    sys.stdout.write(f"partial {token}")  # no line end: passed on masked at the end
    return len(token)


@workflow
async def printed(ctx: WorkflowExecutionContext[Any]) -> int:
    return await chatty()


@task.with_options(name="measure_{value}")
def measure(value: str) -> int:
    return len(value)


@workflow.with_options(secret_requests=["TOKEN"])
async def passed(ctx: WorkflowExecutionContext[Any]) -> int:
    # The workflow's own secret, passed to a task (whose call name shows it) ...
    length = await measure(ctx.secrets["TOKEN"])
    # ... then a pause, so that a resume replays the call and compares its arguments.
    await pause("go on")
    return length


@workflow.with_options(secret_requests=["TOKEN"])
async def output(ctx: WorkflowExecutionContext[Any]) -> dict[str, str]:
    return {"token": ctx.secrets["TOKEN"], "length": str(len(ctx.secrets["TOKEN"]))}


def leaky_fallback(*_: Any, **kwargs: Any) -> None:
    import os

    raise RuntimeError(f"fallback saw {os.environ.get('FLUX_SECRET_TOKEN', '')}")


@task.with_options(secret_requests=["TOKEN"], fallback=leaky_fallback)
def with_fallback(secrets: dict[str, str]) -> None:
    raise ValueError(f"attempt with {secrets['TOKEN']}")


@workflow
async def fell_back(ctx: WorkflowExecutionContext[Any]) -> None:
    await with_fallback()


def leaky_rollback(*_: Any, **kwargs: Any) -> None:
    import os

    raise RuntimeError(f"rollback saw {os.environ.get('FLUX_SECRET_TOKEN', '')}")


@task.with_options(secret_requests=["TOKEN"], rollback=leaky_rollback, retry_max_attempts=2)
def with_rollback(secrets: dict[str, str]) -> None:
    raise ValueError(f"attempt with {secrets['TOKEN']}")


@workflow
async def rolled_back(ctx: WorkflowExecutionContext[Any]) -> None:
    await with_rollback()


@task
def plain(text: str) -> str:
    print("no secret here", end="")
    return f"{text} *** stays"


@workflow
async def no_secrets(ctx: WorkflowExecutionContext[str]) -> str:
    return await plain(ctx.input)


def printing_rollback(*_: Any, **kwargs: Any) -> None:
    import os

    print(f"undoing with {os.environ.get('FLUX_SECRET_TOKEN', '')}", flush=True)


@task.with_options(secret_requests=["TOKEN"], rollback=printing_rollback)
def waits(secrets: dict[str, str]) -> None:
    import time

    time.sleep(60)


@workflow
async def interrupted(ctx: WorkflowExecutionContext[Any]) -> None:
    await waits()
