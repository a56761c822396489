"""The smallest workflow: one task.

Run: flux run examples/hello.py:hello --input '"World"'
Output: "Hello, World"
"""

from flux import WorkflowExecutionContext, task, workflow


@task
async def say_hello(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def hello(ctx: WorkflowExecutionContext[str]) -> str:
    return await say_hello(ctx.input)
