"""Seed block "Rollback Operations": clean up when a task finally fails.

``task_with_rollback`` (the seed's) succeeds, so nothing is rolled back.
``reserve_resources`` has the same rollback and fails: ``rollback_handler``
runs, then the original error reaches the workflow, which reports it.

Run: flux run examples/rollback_operations.py:rollback_operations_workflow
Output: {"task_with_rollback": null,
         "reserve_resources": "rolled back after: OSError: no capacity left"}
"""

from flux import ExecutionError, WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
def rollback_handler():
    # Clean up resources
    pass

@task.with_options(rollback=rollback_handler)
def task_with_rollback():
    # Rollback is called if task fails
    pass
# fmt: on


@task.with_options(rollback=rollback_handler)
def reserve_resources():
    raise OSError("no capacity left")


@workflow
async def rollback_operations_workflow(ctx: WorkflowExecutionContext) -> dict:
    first = await task_with_rollback()
    try:
        second = await reserve_resources()
    except ExecutionError as error:
        second = f"rolled back after: {error}"
    return {"task_with_rollback": first, "reserve_resources": second}
