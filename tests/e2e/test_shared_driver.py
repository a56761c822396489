"""driverMode: Shared on the real cluster: one driver pod serves all runs of a Workflow."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from flux_runs import events_for, resume, run_manifest, status_of, wait_phase, workflow_manifest

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


@task
def double(n: int) -> int:
    return 2 * n


@workflow
async def doubled(ctx: WorkflowExecutionContext[int]) -> int:
    return await double(await double(ctx.input))


@workflow
async def approved(ctx: WorkflowExecutionContext[int]) -> dict:
    n = await double(ctx.input)
    decision = await pause("approve", output=n)
    return {"n": n, "decision": decision}
"""


def _scheduled_pods(cluster: Cluster, ns: str) -> set[str]:
    """Every pod the scheduler placed in the namespace, gone or not."""
    events = json.loads(cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
    return {e["involvedObject"]["name"] for e in events["items"] if e.get("reason") == "Scheduled"}


def test_runs_of_a_shared_workflow_share_one_driver_pod(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("doubled", SOURCE, "doubled", driverMode="Shared"), flux_ns)
    for i in range(6):
        cluster.apply(run_manifest(f"doubled-{i}", "doubled", i), flux_ns)
    for i in range(6):
        status = wait_phase(cluster, operator, flux_ns, f"doubled-{i}", "Succeeded", "Failed")
        assert status["phase"] == "Succeeded", status.get("error")
        assert status["output"] == 4 * i
        assert status["driver"] == {"shared": True}
        # The driver that wrote the outcome announces it, once; running is no news.
        cluster.wait_for(
            f"the Succeeded Event of doubled-{i}",
            lambda i=i: (
                [e["reason"] for e in events_for(cluster, flux_ns, f"doubled-{i}")] == ["Succeeded"]
            ),
            30,
        )
    drivers = {p for p in _scheduled_pods(cluster, flux_ns) if "driver" in p}
    assert len(drivers) == 1, drivers
    assert drivers.pop().startswith("doubled-shared-driver")


def test_a_paused_shared_run_resumes_and_the_driver_exits_when_idle(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("approved", SOURCE, "approved", driverMode="Shared"), flux_ns)
    cluster.apply(run_manifest("approved-1", "approved", 5), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "approved-1", "Paused")
    assert status["pause"] == {"name": "approve", "output": 10}

    def no_driver() -> bool:
        out = cluster.kubectl(
            "get", "pods", "-n", flux_ns, "-l", "flux.dev/workflow=approved", "-o", "name"
        ).stdout
        return not out.strip()

    # Nothing to do while paused: the shared driver leaves after its linger time (20 s).
    cluster.wait_for("the idle shared driver to exit", no_driver, 90)
    resume(cluster, flux_ns, "approved-1", "yes")
    status = wait_phase(cluster, operator, flux_ns, "approved-1", "Succeeded", "Failed")
    assert status["output"] == {"n": 10, "decision": "yes"}
    assert status_of(cluster, flux_ns, "approved-1")["driver"] == {"shared": True}
