"""A task that fails twice, with a long retry delay to crash the run in."""

from __future__ import annotations

import time
from pathlib import Path

from flux import WorkflowExecutionContext, task, workflow

RETRY_DELAY = 1.5


@task.with_options(retry_max_attempts=3, retry_delay=RETRY_DELAY, retry_backoff=1)
def flaky(path: str) -> int:
    trace = Path(path)
    attempt = len(trace.read_text().splitlines()) + 1 if trace.exists() else 1
    with trace.open("a") as out:
        out.write(f"{attempt} {time.time()}\n")
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


@workflow
async def backoff(ctx: WorkflowExecutionContext[str]) -> int:
    return await flaky(ctx.input)
