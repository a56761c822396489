"""Seed block "Retry Mechanism": a task that fails at random is retried.

The seed draws from ``random.random()``. So that runs can be compared (locally
and on Kubernetes, where each attempt is a pod of its own), ``random`` here is a
stand-in whose draws alternate 0.9, 0.1, 0.9, ... within one process: the first
attempt in a fresh process succeeds; a second call in the same process fails
once and succeeds on its retry 1 s later. The output is "success" either way.

Run: flux run examples/retry_mechanism.py:retry_workflow
Output: "success"
"""

import itertools

from flux import WorkflowExecutionContext, task, workflow


class _AlternatingRandom:
    """What the seed uses of the ``random`` module, with reproducible draws."""

    def __init__(self) -> None:
        self._draws = itertools.cycle([0.9, 0.1])

    def random(self) -> float:
        return next(self._draws)


random = _AlternatingRandom()


# fmt: off
# --- seed block, verbatim ---
@task.with_options(
    retry_max_attempts=3,
    retry_delay=1,
    retry_backoff=2
)
def retrying_task():
    if random.random() < 0.5:
        raise ValueError("Task failed")
    return "success"
# fmt: on


@workflow
async def retry_workflow(ctx: WorkflowExecutionContext) -> str:
    return await retrying_task()
