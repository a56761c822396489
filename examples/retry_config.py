"""Seed block "Retry Configuration": a task with retries and exponential backoff.

The body succeeds, so no retry is needed; the policy (3 retries after the first
attempt, delays 1 s, 2 s, 4 s) is recorded with the call in history.

Run: flux run examples/retry_config.py:retry_config_workflow
Output: null
"""

from flux import WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
@task.with_options(
    retry_max_attempts=3,    # Try up to 3 times
    retry_delay=1,          # Wait 1 second initially
    retry_backoff=2         # Double delay after each retry
)
def retrying_task():
    # Task will retry with delays: 1s, 2s, 4s
    pass
# fmt: on


@workflow
async def retry_config_workflow(ctx: WorkflowExecutionContext) -> None:
    return await retrying_task()
