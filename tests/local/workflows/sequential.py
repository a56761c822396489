"""Six sequential steps, each leaving a line in a trace file, for crash-and-resume tests."""

from __future__ import annotations

import time
from pathlib import Path

from flux import WorkflowExecutionContext, task, workflow

STEPS = 6


@task
def step(path: str, index: int) -> int:
    # The trace is written first, so a step killed mid-way shows up in it too.
    with Path(path).open("a") as trace:
        trace.write(f"{index}\n")
    time.sleep(0.3)
    return index


@workflow
async def sequential(ctx: WorkflowExecutionContext[str]) -> list[int]:
    return [await step(ctx.input, index) for index in range(STEPS)]
