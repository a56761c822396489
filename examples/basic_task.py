"""Seed block "Basic Task Creation": a task that upper-cases its input.

Run: flux run examples/basic_task.py:basic_workflow --input '"hello"'
Output: "HELLO"
"""

from flux import WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
@task
async def simple_task(data: str):
    return data.upper()
# fmt: on


@workflow
async def basic_workflow(ctx: WorkflowExecutionContext[str]) -> str:
    return await simple_task(ctx.input)
