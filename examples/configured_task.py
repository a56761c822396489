"""Seed block "Configured Task Creation": one task with every option.

``complex_task`` reads the secret ``API_KEY`` from the variable
``FLUX_SECRET_API_KEY`` or from the store (``flux secrets set API_KEY`` reads the
value from stdin); without it the task fails before its body runs. Its output
goes to a ``LocalFileStorage`` under ``$FLUX_HOME/outputs`` and history keeps
only a reference to it. On failure it would retry 3 times (after 1 s, 2 s, 4 s)
and then return what ``fallback_function`` returns; because it has a fallback,
its rollback is never used (a rollback runs only for tasks without one).

Run: FLUX_SECRET_API_KEY=s3cr3t \\
     flux run examples/configured_task.py:configured_workflow --input '"report"'
Output: {"data": "REPORT", "authenticated": true}
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.local.storage import LocalFileStorage


def process_data(data: str, api_key: str) -> dict:
    """Stands in for a call to a service authenticated with ``api_key``.

    The key itself never appears in the result: secret values must not reach history.
    """
    return {"data": data.upper(), "authenticated": bool(api_key)}


def fallback_function(data: str) -> dict:
    """Called with the task's own arguments once every retry failed."""
    return {"data": data, "authenticated": False}


def rollback_function(data: str) -> None:
    """Never called: a task with a fallback does not roll back."""


custom_storage = LocalFileStorage()


# fmt: off
# --- seed block, verbatim ---
@task.with_options(
    name="process_data",                 # Custom task name
    retry_max_attempts=3,                # Maximum retry attempts
    retry_delay=1,                       # Initial delay between retries
    retry_backoff=2,                     # Backoff multiplier
    timeout=30,                          # Task timeout in seconds
    fallback=fallback_function,          # Fallback function
    rollback=rollback_function,          # Rollback function
    secret_requests=["API_KEY"],         # Required secrets
    output_storage=custom_storage        # Custom output storage
)
async def complex_task(data: str, secrets: dict = {}):
    # Task implementation using secrets
    return process_data(data, secrets["API_KEY"])
# fmt: on


@workflow
async def configured_workflow(ctx: WorkflowExecutionContext[str]) -> dict:
    return await complex_task(ctx.input)
