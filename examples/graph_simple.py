"""Seed block "Graph-based Task Composition": a two-node graph.

Run: flux run examples/graph_simple.py:graph_workflow --input '"World"'
Output: "Hello, World"
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import Graph


# fmt: off
# --- seed block, verbatim ---
@task
def get_name(input: str) -> str:
    return input

@task
def say_hello(name: str) -> str:
    return f"Hello, {name}"

@workflow
async def graph_workflow(ctx: WorkflowExecutionContext[str]):
    # Create a graph named "hello_world"
    hello = (
        Graph("hello_world")
        # Add nodes (tasks)
        .add_node("get_name", get_name)
        .add_node("say_hello", say_hello)
        # Define edges (dependencies)
        .add_edge("get_name", "say_hello")
        # Define entry and exit points
        .start_with("get_name")
        .end_with("say_hello")
    )

    # Execute the graph
    return await hello(ctx.input)
# fmt: on
