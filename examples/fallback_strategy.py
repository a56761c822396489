"""Seed block "Fallback Strategy": retries first, then the fallback.

``task_with_fallback`` (the seed's) succeeds at once. ``always_failing`` has
the same fallback and fails every attempt: it is retried twice (after 0.1 s and
0.2 s), then ``fallback_handler`` supplies its result.

Run: flux run examples/fallback_strategy.py:fallback_strategy_workflow
Output: {"task_with_fallback": null, "always_failing": "fallback result"}
"""

from flux import WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
def fallback_handler():
    return "fallback result"

@task.with_options(
    fallback=fallback_handler,
    retry_max_attempts=3
)
def task_with_fallback():
    # Retries first, then fallback if all retries fail
    pass
# fmt: on


@task.with_options(fallback=fallback_handler, retry_max_attempts=2, retry_delay=0.1)
def always_failing():
    raise TimeoutError("the service did not answer")


@workflow
async def fallback_strategy_workflow(ctx: WorkflowExecutionContext) -> dict:
    return {
        "task_with_fallback": await task_with_fallback(),
        "always_failing": await always_failing(),
    }
