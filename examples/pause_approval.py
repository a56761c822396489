"""Seed block "Workflow Pauses": stop at a named pause point until resumed.

``approval_workflow`` (the seed's) ignores what the resume supplies.
``review_workflow`` uses it: ``pause`` returns the resume input.

Run:    flux run examples/pause_approval.py:approval_workflow
        (prints the run id; the run is PAUSED at "wait_for_approval")
Resume: flux resume <run id> --input '"ok"'
Output: "Approved: quarterly report"

Run:    flux run examples/pause_approval.py:review_workflow
Resume: flux resume <run id> --input '{"approved": true, "by": "alice"}'
Output: {"result": "quarterly report", "decision": {"approved": true, "by": "alice"}}
"""

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


@task
async def process_data() -> str:
    return "quarterly report"


# fmt: off
# --- seed block, verbatim ---
@workflow
async def approval_workflow(ctx: WorkflowExecutionContext):
    # Process something
    result = await process_data()

    # Pause the workflow with a named pause point
    await pause("wait_for_approval")

    # This code will only execute after the workflow is resumed
    return f"Approved: {result}"
# fmt: on


@workflow
async def review_workflow(ctx: WorkflowExecutionContext) -> dict:
    result = await process_data()
    decision = await pause("wait_for_review", output=result)
    return {"result": result, "decision": decision}
