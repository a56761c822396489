"""Seed block "Timeout Handling": a deadline per attempt, then the fallback.

``timed_task`` (the seed's) returns well within its 30 s. ``slow_task`` has the
same fallback and a 0.5 s deadline but blocks for 2 s: the attempt fails at its
deadline (its late result is discarded) and the fallback supplies the result.

Run: flux run examples/timeout_handling.py:timeout_workflow
Output: {"timed_task": null, "slow_task": "fallback result"}
"""

import time

from flux import WorkflowExecutionContext, task, workflow


def fallback_handler():
    return "fallback result"


# fmt: off
# --- seed block, verbatim ---
@task.with_options(
    timeout=30,
    fallback=fallback_handler
)
def timed_task():
    # Fails if exceeds 30 seconds, then calls fallback
    pass
# fmt: on


@task.with_options(timeout=0.5, fallback=fallback_handler)
def slow_task():
    time.sleep(2)
    return "too late"


@workflow
async def timeout_workflow(ctx: WorkflowExecutionContext) -> dict:
    return {"timed_task": await timed_task(), "slow_task": await slow_task()}
