"""Cancelling a WorkflowRun on the real cluster: ``spec.cancel: true``, as a user
patches it. The tasks in flight stop, their rollbacks run, the run ends Cancelled."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import (
    events_for,
    full_history,
    run_manifest,
    status_of,
    wait_phase,
    workflow_manifest,
)

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

# Side effects land in FLUX_HOME, a volume all pods of the namespace's runs share;
# a later run of ``markers`` reads them back.
SOURCE = """
import os
import time
from pathlib import Path

from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


def mark(name: str) -> None:
    home = Path(os.environ.get("FLUX_HOME", "."))
    home.mkdir(parents=True, exist_ok=True)
    (home / name).write_text("x")


def undo_first(key: str) -> None:
    mark(key + "-first-undone")


@task.with_options(rollback=undo_first)
def first(key: str) -> str:
    mark(key + "-first-done")
    return key


def undo_slow(key: str) -> None:
    mark(key + "-slow-undone")


@task.with_options(rollback=undo_slow)
def slow(key: str) -> str:
    mark(key + "-slow-started")
    time.sleep(300)
    return "too late"


@workflow
async def cancellable(ctx: WorkflowExecutionContext[str]) -> str:
    await first(ctx.input)
    return await slow(ctx.input)


@workflow
async def waits(ctx: WorkflowExecutionContext[None]) -> str:
    return await pause("approve", output="ok?")


@task
def list_markers(key: str) -> list[str]:
    home = Path(os.environ.get("FLUX_HOME", "."))
    return sorted(p.name for p in home.glob(key + "-*"))


@workflow
async def markers(ctx: WorkflowExecutionContext[str]) -> list[str]:
    return await list_markers(ctx.input)
"""


def _cancel(cluster: Cluster, ns: str, run: str, value: bool = True) -> Any:
    """What a user (or ``flux kube cancel``) does."""
    patch = json.dumps({"spec": {"cancel": value}})
    return cluster.kubectl(
        "patch", "fxrun", run, "-n", ns, "--type=merge", "-p", patch, check=False
    )


def _assert_cancelled(cluster: Cluster, ns: str, run: str, status: dict[str, Any]) -> None:
    assert status["phase"] == "Cancelled", status.get("error")
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert (condition["status"], condition["reason"]) == ("False", "Cancelled")

    def announced() -> bool:
        return any(e["reason"] == "Cancelled" for e in events_for(cluster, ns, run))

    cluster.wait_for(f"the Cancelled Event of {run}", announced, 30)


@pytest.fixture
def cancel_ns(cluster: Cluster, flux_ns: str, shared_home: dict[str, Any]) -> str:
    for name in ("cancellable", "waits", "markers"):
        cluster.apply(workflow_manifest(name, SOURCE, name, homeVolume=shared_home), flux_ns)
    return flux_ns


def test_a_cancel_stops_the_task_in_flight_and_runs_its_rollback(
    cluster: Cluster, cancel_ns: str, operator: Operator
) -> None:
    ns = cancel_ns
    cluster.apply(run_manifest("cancel-1", "cancellable", "k1"), ns)

    def slow_running() -> bool:
        tasks = status_of(cluster, ns, "cancel-1").get("tasks") or []
        return any(t["callId"] == "slow#0" and t["state"] == "Running" for t in tasks)

    cluster.wait_for("slow#0 running", slow_running, 150, describe=operator.log_tail)
    time.sleep(3)  # its pod has started the task
    assert _cancel(cluster, ns, "cancel-1").returncode == 0
    status = wait_phase(cluster, operator, ns, "cancel-1", "Cancelled", "Failed", "Succeeded")
    _assert_cancelled(cluster, ns, "cancel-1", status)
    steps = [(e["type"], e["sourceId"]) for e in full_history(cluster, ns, "cancel-1")]
    assert ("TASK_COMPLETED", "first#0") in steps
    slow_steps = [t for t, source in steps if source == "slow#0"]
    assert slow_steps == [
        "TASK_STARTED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_CANCELLED",
    ]
    assert steps[-1] == ("WORKFLOW_CANCELLED", "cancel-1")
    # The request stays, and cannot be taken back.
    refused = _cancel(cluster, ns, "cancel-1", False)
    assert refused.returncode != 0 and "cannot be unset once true" in refused.stderr

    # The rollback ran in the cluster; the completed task's did not (as locally).
    cluster.apply(run_manifest("markers-1", "markers", "k1"), ns)
    done = wait_phase(cluster, operator, ns, "markers-1", "Succeeded", "Failed")
    assert done["output"] == ["k1-first-done", "k1-slow-started", "k1-slow-undone"], done

    # A cancel of a finished run changes nothing and says nothing (its condition
    # notes the new generation).
    assert _cancel(cluster, ns, "markers-1").returncode == 0
    time.sleep(5)
    after = status_of(cluster, ns, "markers-1")
    assert {**after, "conditions": None} == {**done, "conditions": None}
    [(before, now)] = zip(done["conditions"], after["conditions"], strict=True)
    assert {**now, "observedGeneration": 1} == before
    reasons = [e["reason"] for e in events_for(cluster, ns, "markers-1")]
    assert reasons.count("Succeeded") == 1 and "Cancelled" not in reasons


def test_a_cancel_ends_a_paused_run(cluster: Cluster, cancel_ns: str, operator: Operator) -> None:
    ns = cancel_ns
    cluster.apply(run_manifest("paused-1", "waits"), ns)
    wait_phase(cluster, operator, ns, "paused-1", "Paused")
    assert _cancel(cluster, ns, "paused-1").returncode == 0
    status = wait_phase(cluster, operator, ns, "paused-1", "Cancelled", "Failed", "Succeeded")
    _assert_cancelled(cluster, ns, "paused-1", status)
    assert "pause" not in status
