"""Seed block "Timeout Configuration": a task with a 30 s deadline per attempt.

The body returns at once, well within its deadline.

Run: flux run examples/timeout_config.py:timeout_config_workflow
Output: null
"""

from flux import WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
@task.with_options(timeout=30)
def timed_task():
    # Task will fail if it exceeds 30 seconds
    pass
# fmt: on


@workflow
async def timeout_config_workflow(ctx: WorkflowExecutionContext) -> None:
    return await timed_task()
