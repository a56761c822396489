"""Seed block "Random Operations": random values recorded once, replayed thereafter.

The workflow returns nothing; the values it drew are in the run's history
(``flux show <run id>``) and stay the same however often the run is replayed.

Run: flux run examples/builtins_random.py:random_workflow
Output: null
"""

# The seed block assigns values it does not use.
# ruff: noqa: F841

from flux import WorkflowExecutionContext, workflow
from flux.tasks import choice, randint, randrange


# fmt: off
# --- seed block, verbatim ---
@workflow
async def random_workflow(ctx: WorkflowExecutionContext):
    chosen = await choice(["a", "b", "c"])    # Random choice
    number = await randint(1, 10)             # Random integer
    range_num = await randrange(0, 10, 2)     # Random range
# fmt: on
