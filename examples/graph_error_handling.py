"""Seed block "Error Handling in Graphs": route a failed result to a fallback node.

``safe_task`` never raises: it returns a string on success and a dict describing
the error otherwise. The edge to ``fallback`` is taken only for a non-string
result. ``fallback`` is the only end node, so a successful run (fallback
skipped) returns null.

Run: flux run examples/graph_error_handling.py:error_handling_workflow --input '"21"'
Output: null
Run: flux run examples/graph_error_handling.py:error_handling_workflow --input '"abc"'
Output: "recovered from: invalid literal for int() with base 10: 'abc'"
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import Graph


@task
def safe_task(text: str) -> str | dict:
    try:
        return str(int(text) * 2)
    except ValueError as exc:
        return {"error": str(exc)}


@task
def fallback_task(result: dict) -> str:
    return f"recovered from: {result['error']}"


# fmt: off
# --- seed block, verbatim ---
def check_condition(result):
    return isinstance(result, str)

graph = (
    Graph("error_handling")
    .add_node("task1", safe_task)
    .add_node("fallback", fallback_task)
    .add_edge("task1", "fallback", condition=lambda r: not check_condition(r))
    .start_with("task1")
    .end_with("fallback")
)
# fmt: on


@workflow
async def error_handling_workflow(ctx: WorkflowExecutionContext[str]) -> str | None:
    return await graph(ctx.input)
