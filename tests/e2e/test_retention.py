"""Retention on the real cluster: a finished run whose ttlSecondsAfterFinished
has passed is deleted, and the garbage collector takes its pods and ConfigMaps
(they name the run as their owner); a run without one stays."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import pytest
from flux_runs import run_manifest, status_of, wait_phase, workflow_manifest

from flux.k8s import archive

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow


@task
def blob(size: int) -> str:
    return "x" * size


@workflow
async def large(ctx: WorkflowExecutionContext[int]) -> int:
    return len(await blob(ctx.input))
"""
# Larger than a value kept inline: the task's output goes to a ConfigMap of the run.
SIZE = 2 * archive.INLINE_VALUE_BYTES


def _owned(cluster: Cluster, ns: str, kind: str, run: str) -> list[str]:
    out = cluster.kubectl(
        "get", kind, "-n", ns, "-l", f"flux.dev/run={run}", "-o", "name", check=False
    ).stdout
    return out.split()


def _exists(cluster: Cluster, ns: str, run: str) -> bool:
    found = cluster.kubectl("get", "workflowrun", run, "-n", ns, "-o", "name", check=False)
    return bool(found.stdout.strip())


def test_a_run_is_deleted_with_what_it_owns_after_its_ttl_and_one_without_stays(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("large", SOURCE, "large"), flux_ns)
    expiring = run_manifest("expiring", "large", SIZE)
    expiring["spec"]["ttlSecondsAfterFinished"] = 5
    cluster.apply(expiring, flux_ns)
    cluster.apply(run_manifest("kept", "large", SIZE), flux_ns)

    status = wait_phase(cluster, operator, flux_ns, "expiring", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    finished = dt.datetime.fromisoformat(status["finishTime"].replace("Z", "+00:00"))
    assert _owned(cluster, flux_ns, "configmaps", "expiring"), "its output went to a ConfigMap"
    kept = wait_phase(cluster, operator, flux_ns, "kept", "Succeeded", "Failed")
    assert kept["phase"] == "Succeeded", kept.get("error")

    cluster.wait_for(
        "the expired run to be deleted",
        lambda: not _exists(cluster, flux_ns, "expiring"),
        timeout=30,
        describe=operator.log_tail,
    )
    gone_after = (dt.datetime.now(dt.UTC) - finished).total_seconds()
    assert 5 <= gone_after <= 15, f"deleted {gone_after:.1f}s after it finished (ttl 5s)"
    cluster.wait_for(
        "its ConfigMaps and pods to be garbage-collected",
        lambda: (
            not _owned(cluster, flux_ns, "configmaps", "expiring")
            and not _owned(cluster, flux_ns, "pods", "expiring")
        ),
        timeout=15,
    )

    # Well past the other's time to live, the run without one is still there, whole.
    time.sleep(max(0.0, 8 - (dt.datetime.now(dt.UTC) - finished).total_seconds()))
    assert _exists(cluster, flux_ns, "kept")
    assert status_of(cluster, flux_ns, "kept")["phase"] == "Succeeded"
    assert _owned(cluster, flux_ns, "configmaps", "kept")
