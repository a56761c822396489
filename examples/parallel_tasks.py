"""Seed block "Parallel Execution": three tasks at once, results in call order.

Run: flux run examples/parallel_tasks.py:parallel_workflow
Output: ["task1 done", "task2 done", "task3 done"]
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import parallel


@task
async def task1() -> str:
    return "task1 done"


@task
def task2() -> str:
    return "task2 done"


@task
async def task3() -> str:
    return "task3 done"


# fmt: off
# --- seed block, verbatim ---
@workflow
async def parallel_workflow(ctx: WorkflowExecutionContext):
    results = await parallel(
        task1(),
        task2(),
        task3()
    )
    return results
# fmt: on
