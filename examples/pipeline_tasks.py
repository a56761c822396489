"""Seed block "Pipeline Processing": each task gets the previous task's result.

Run: flux run examples/pipeline_tasks.py:pipeline_workflow --input 3
Output: "result: 8"   (3 + 1 = 4, 4 * 2 = 8)
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pipeline


@task
def task1(value: int) -> int:
    return value + 1


@task
async def task2(value: int) -> int:
    return value * 2


@task
def task3(value: int) -> str:
    return f"result: {value}"


# fmt: off
# --- seed block, verbatim ---
@workflow
async def pipeline_workflow(ctx: WorkflowExecutionContext):
    result = await pipeline(
        task1,
        task2,
        task3,
        input=ctx.input
    )
    return result
# fmt: on
