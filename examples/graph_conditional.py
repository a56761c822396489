"""Seed block "Graph Construction": conditional edges choose the branch.

``task1`` subtracts 10 from the input; ``task2`` runs when the difference is
positive, ``task3`` otherwise. Both are end nodes; only the one that ran
contributes to the result.

Run: flux run examples/graph_conditional.py:conditional_workflow --input 15
Output: "5 is positive"
Run: flux run examples/graph_conditional.py:conditional_workflow --input 3
Output: "-7 is not positive"
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import Graph


@task
def task1_func(value: int) -> int:
    return value - 10


@task
def task2_func(result: int) -> str:
    return f"{result} is positive"


@task
async def task3_func(result: int) -> str:
    return f"{result} is not positive"


# fmt: off
# --- seed block, verbatim ---
# Create a more complex graph with conditions
graph = (
    Graph("complex_workflow")
    # Add nodes
    .add_node("task1", task1_func)
    .add_node("task2", task2_func)
    .add_node("task3", task3_func)

    # Add edges with conditions
    .add_edge("task1", "task2", condition=lambda result: result > 0)
    .add_edge("task1", "task3", condition=lambda result: result <= 0)

    # Define workflow boundaries
    .start_with("task1")
    .end_with("task2")
    .end_with("task3")

    # Validate graph structure
    .validate()
)
# fmt: on


@workflow
async def conditional_workflow(ctx: WorkflowExecutionContext[int]) -> str:
    return await graph(ctx.input)
