"""task.map(items, batch_size=N) on the real cluster: N items per pod, outcomes per item."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from flux_runs import all_task_records, full_history, run_manifest, wait_phase, workflow_manifest

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

BATCHED = """
from flux import WorkflowExecutionContext, task, workflow


def instead(n: int) -> int:
    return -n


@task.with_options(fallback=instead)
def square(n: int) -> int:
    if n == 7:
        raise ValueError("seven is unlucky")
    return n * n


@workflow
async def squares(ctx: WorkflowExecutionContext[int]) -> list[int]:
    return await square.map(range(ctx.input), batch_size=4)
"""


def test_a_batched_map_runs_n_items_per_pod_with_per_item_outcomes(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("squares", BATCHED, "squares"), flux_ns)
    cluster.apply(run_manifest("squares-1", "squares", 10), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "squares-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert status["output"] == [n * n if n != 7 else -7 for n in range(10)]

    records = {r["callId"]: r for r in all_task_records(cluster, flux_ns, "squares-1")}
    assert len(records) == 10
    assert {r["attempts"] for r in records.values()} == {1}
    assert records["square#7"]["lastError"]["message"] == "seven is unlucky"
    history = full_history(cluster, flux_ns, "squares-1")
    per_item = [e["type"] for e in history if e["sourceId"] == "square#7"]
    assert per_item == [
        "TASK_STARTED",
        "TASK_FALLBACK_STARTED",
        "TASK_FALLBACK_COMPLETED",
        "TASK_COMPLETED",
    ]
    for event in history:
        if event["type"] == "TASK_STARTED" and event["name"] == "square":
            assert event["value"]["batch"] == {"group": "square#0", "size": 4}
    # The pods are gone by now; the scheduler's events still name them.
    events = json.loads(cluster.kubectl("get", "events", "-n", flux_ns, "-o", "json").stdout)
    scheduled = {
        e["involvedObject"]["name"] for e in events["items"] if e.get("reason") == "Scheduled"
    }
    task_pods = {n for n in scheduled if "-driver-" not in n}
    assert len([n for n in task_pods if "-batch-" in n]) == 3, task_pods  # 4 + 4 + 2 items
    assert len(task_pods) == 4, task_pods  # and the fallback of square#7
