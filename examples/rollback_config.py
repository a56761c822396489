"""Seed block "Rollback Configuration": a task that cleans up after itself when it fails.

``task_with_rollback`` (the seed's) succeeds, so its rollback is not used.
``failing_task`` has the same rollback and always fails: the rollback is called
with the task's own arguments, then the original error still reaches the
workflow as an ``ExecutionError``, which this workflow catches.

Run: flux run examples/rollback_config.py:rollback_workflow --input '"order-1"'
Output: {"task_with_rollback": null,
         "failing_task": "rolled back: RuntimeError: could not process 'order-1'"}
"""

from flux import ExecutionError, WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
def rollback_handler(input_data):
    # Clean up after task failure
    pass

@task.with_options(rollback=rollback_handler)
def task_with_rollback(input_data):
    # If this fails, rollback_handler is called
    pass
# fmt: on


@task.with_options(rollback=rollback_handler)
def failing_task(input_data):
    raise RuntimeError(f"could not process {input_data!r}")


@workflow
async def rollback_workflow(ctx: WorkflowExecutionContext[str]) -> dict:
    first = await task_with_rollback(ctx.input)
    try:
        second = await failing_task(ctx.input)
    except ExecutionError as error:
        second = f"rolled back: {error}"
    return {"task_with_rollback": first, "failing_task": second}
