"""Seed block "Time Operations": durable ``now`` and ``sleep``.

Both readings of the clock are recorded in history and replayed, and the sleep
is a durable timer. The output is the time between the two readings: at least
5 s (a little more, by however long the run took to wake up).

Run: flux run examples/builtins_time.py:timing_workflow
Output: a timedelta of about 5 s
"""

from datetime import timedelta

from flux import WorkflowExecutionContext, workflow
from flux.tasks import now, sleep


# fmt: off
# --- seed block, verbatim ---
@workflow
async def timing_workflow(ctx: WorkflowExecutionContext):
    start_time = await now()           # Get current time
    await sleep(timedelta(seconds=5))   # Sleep for duration
    end_time = await now()
    return end_time - start_time
# fmt: on
