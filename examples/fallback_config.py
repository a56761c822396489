"""Seed block "Fallback Configuration": a task whose failure is replaced by a fallback.

``task_with_fallback`` (the seed's) succeeds, so its fallback is not used.
``unreachable_service`` has the same fallback and always fails: the fallback is
called with the task's own arguments and its value becomes the task's result.

Run: flux run examples/fallback_config.py:fallback_workflow --input '"order-1"'
Output: {"task_with_fallback": null, "unreachable_service": "fallback result"}
"""

from flux import WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
def fallback_handler(input_data):
    # Handle task failure
    return "fallback result"

@task.with_options(fallback=fallback_handler)
def task_with_fallback(input_data):
    # If this fails, fallback_handler is called
    pass
# fmt: on


@task.with_options(fallback=fallback_handler)
def unreachable_service(input_data):
    raise ConnectionError(f"cannot reach the service for {input_data!r}")


@workflow
async def fallback_workflow(ctx: WorkflowExecutionContext[str]) -> dict:
    return {
        "task_with_fallback": await task_with_fallback(ctx.input),
        "unreachable_service": await unreachable_service(ctx.input),
    }
