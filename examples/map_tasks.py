"""Seed block "Task Mapping": one call of a task per item, results in item order.

Run: flux run examples/map_tasks.py:mapping_workflow
Output: ["A", "B", "C"]
"""

from flux import WorkflowExecutionContext, task, workflow


# fmt: off
# --- seed block, verbatim ---
@task
async def process_item(item: str):
    return item.upper()

@workflow
async def mapping_workflow(ctx: WorkflowExecutionContext):
    items = ["a", "b", "c"]
    results = await process_item.map(items)
    return results
# fmt: on
