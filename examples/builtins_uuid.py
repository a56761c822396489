"""Seed block "UUID Generation": a UUID recorded once, replayed thereafter.

The workflow returns nothing; the UUID is in the run's history.

Run: flux run examples/builtins_uuid.py:id_workflow
Output: null
"""

# The seed block assigns a value it does not use.
# ruff: noqa: F841

from flux import WorkflowExecutionContext, workflow
from flux.tasks import uuid4


# fmt: off
# --- seed block, verbatim ---
@workflow
async def id_workflow(ctx: WorkflowExecutionContext):
    new_id = await uuid4()  # Generate UUID
# fmt: on
