"""The operator on the real cluster: WorkflowRuns run as pods and end as they should."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import (
    events_for,
    resume,
    run_manifest,
    run_pods,
    status_of,
    wait_phase,
    workflow_manifest,
)

if TYPE_CHECKING:
    from conftest import Cluster, Operator

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

SEQUENTIAL = """
from flux import WorkflowExecutionContext, task, workflow


@task
def step(i: int, acc: list[int]) -> list[int]:
    return [*acc, i]


@workflow
async def ten_steps(ctx: WorkflowExecutionContext[int]) -> list[int]:
    acc: list[int] = []
    for i in range(ctx.input):
        acc = await step(i, acc)
    return acc
"""

APPROVAL = """
from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import pause


@task
def prepare(name: str) -> str:
    return name.upper()


@workflow
async def approval(ctx: WorkflowExecutionContext[str]) -> dict:
    prepared = await prepare(ctx.input)
    decision = await pause("wait_for_approval", output=prepared)
    return {"prepared": prepared, "decision": decision}
"""

SLOW = """
import time
from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import parallel


@task
def nap(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@workflow
async def slow(ctx: WorkflowExecutionContext[int]) -> list:
    return await parallel(nap(ctx.input), nap(ctx.input))
"""


def test_a_run_succeeds_and_kubectl_wait_sees_it(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("seq", SEQUENTIAL, "ten_steps"), flux_ns)
    cluster.apply(run_manifest("seq-1", "seq", 3), flux_ns)
    cluster.kubectl(
        "wait",
        "-n",
        flux_ns,
        "--for=condition=Succeeded",
        "--timeout=180s",
        "fxrun/seq-1",
        timeout=200,
    )
    status = status_of(cluster, flux_ns, "seq-1")
    assert status["phase"] == "Succeeded"
    assert status["output"] == [0, 1, 2]
    reasons = {e["reason"] for e in events_for(cluster, flux_ns, "seq-1")}
    assert "Succeeded" in reasons
    cluster.wait_for("no pods left", lambda: not run_pods(cluster, flux_ns, "seq-1"), 60)


def test_a_paused_run_has_no_pods_until_resumed(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("approval", APPROVAL, "approval"), flux_ns)
    cluster.apply(run_manifest("ap-1", "approval", "order-7"), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "ap-1", "Paused")
    assert status["pause"] == {"name": "wait_for_approval", "output": "ORDER-7"}
    cluster.wait_for("no pods while paused", lambda: not run_pods(cluster, flux_ns, "ap-1"), 60)
    time.sleep(2)
    assert not run_pods(cluster, flux_ns, "ap-1")
    resume(cluster, flux_ns, "ap-1", "yes")
    status = wait_phase(cluster, operator, flux_ns, "ap-1", "Succeeded", "Failed")
    assert status["output"] == {"prepared": "ORDER-7", "decision": "yes"}


def test_deleting_a_running_run_removes_its_pods(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("slow", SLOW, "slow"), flux_ns)
    cluster.apply(run_manifest("slow-1", "slow", 120), flux_ns)
    cluster.wait_for(
        "two task pods",
        lambda: len([p for p in run_pods(cluster, flux_ns, "slow-1") if "driver" not in p]) >= 2,
        120,
        describe=operator.log_tail,
    )
    cluster.kubectl("delete", "fxrun", "slow-1", "-n", flux_ns, "--wait=false")
    cluster.wait_for(
        "pods removed with their run",
        lambda: not run_pods(cluster, flux_ns, "slow-1"),
        90,
        describe=lambda: cluster.kubectl("get", "pods", "-n", flux_ns).stdout,
    )


def test_operator_killed_mid_run_finishes_with_each_task_run_once(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("seq10", SEQUENTIAL, "ten_steps"), flux_ns)
    cluster.apply(run_manifest("seq10-1", "seq10", 10), flux_ns)

    def some_done() -> bool:
        tasks = status_of(cluster, flux_ns, "seq10-1").get("tasks") or []
        return sum(t["state"] == "Completed" for t in tasks) >= 3

    cluster.wait_for("3 of 10 tasks done", some_done, 150, describe=operator.log_tail)
    operator.kill()
    time.sleep(3)
    operator.start()
    status = wait_phase(cluster, operator, flux_ns, "seq10-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert status["output"] == list(range(10))
    tasks = status["tasks"]
    assert len(tasks) == 10
    assert all(t["attempts"] == 1 and t["podStarts"] == 1 for t in tasks), tasks
    started = [e["sourceId"] for e in status["history"] if e["type"] == "TASK_STARTED"]
    assert len(started) == len(set(started)) == 10


def test_bad_workflows_and_runs_fail_clearly(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    broken = "from flux import workflow\n\n@workflow\nasync def broken(ctx):\n    return (\n"
    cluster.apply(workflow_manifest("broken", broken, "broken"), flux_ns)
    cluster.apply(workflow_manifest("typed", SEQUENTIAL, "ten_steps"), flux_ns)
    cluster.apply(run_manifest("uses-broken", "broken", 1), flux_ns)
    cluster.apply(run_manifest("uses-missing", "no-such-workflow", 1), flux_ns)
    cluster.apply(run_manifest("bad-input", "typed", "not a number"), flux_ns)

    def ready(name: str) -> dict[str, Any] | None:
        conditions = (cluster.get("workflow", name, flux_ns).get("status") or {}).get(
            "conditions"
        ) or []
        return next((c for c in conditions if c["type"] == "Ready"), None)

    condition = cluster.wait_for(
        "Ready condition of the broken Workflow",
        lambda: ready("broken"),
        60,
        describe=operator.log_tail,
    )
    assert condition["status"] == "False"
    assert "line 5" in condition["message"] and "syntax" in condition["message"]
    expected = {
        "uses-broken": ("WorkflowInvalid", "line 5"),
        "uses-missing": ("WorkflowNotFound", "no-such-workflow"),
        "bad-input": ("InvalidInput", "valid integer"),
    }
    for run, (reason, words) in expected.items():
        status = wait_phase(cluster, operator, flux_ns, run, "Failed", "Succeeded")
        assert status["phase"] == "Failed", run
        succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("False", reason), succeeded
        assert words in succeeded["message"], succeeded
        cluster.wait_for(
            f"a {reason} Event for {run}",
            lambda run=run, reason=reason: any(
                e["reason"] == reason and e["type"] == "Warning"
                for e in events_for(cluster, flux_ns, run)
            ),
            30,
        )


def test_the_operator_account_cannot_read_secrets(cluster: Cluster) -> None:
    """deploy/operator-rbac.yaml, as installed, grants nothing on Secrets."""
    cluster.kubectl("create", "namespace", "flux-workflows", check=False)
    cluster.kubectl("apply", "-f", str(REPO / "deploy/operator-rbac.yaml"))
    who = "system:serviceaccount:flux-workflows:flux-operator"
    for verb in ("get", "list", "watch"):
        answer = cluster.kubectl("auth", "can-i", verb, "secrets", "-A", "--as", who, check=False)
        assert answer.stdout.strip() == "no", (verb, answer.stdout, answer.stderr)
    allowed = cluster.kubectl("auth", "can-i", "create", "pods", "-A", "--as", who, check=False)
    assert allowed.stdout.strip() == "yes"


def test_task_pods_and_drivers_cannot_read_secrets(cluster: Cluster, flux_ns: str) -> None:
    for account in ("flux-driver", "default"):
        who = f"system:serviceaccount:{flux_ns}:{account}"
        answer = cluster.kubectl(
            "auth", "can-i", "get", "secrets", "-n", flux_ns, "--as", who, check=False
        )
        assert answer.stdout.strip() == "no", (account, answer.stdout, answer.stderr)


def test_a_lost_task_pod_is_restarted_without_using_the_task_retries(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("lost", SLOW, "slow"), flux_ns)
    cluster.apply(run_manifest("lost-1", "lost", 8), flux_ns)

    def a_running_task_pod() -> str | None:
        out = cluster.kubectl(
            "get",
            "pods",
            "-n",
            flux_ns,
            "-l",
            "flux.dev/run=lost-1,flux.dev/role=task",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ).stdout.split()
        return out[0] if out else None

    victim = cluster.wait_for(
        "a running task pod", a_running_task_pod, 120, describe=operator.log_tail
    )
    cluster.kubectl("delete", "pod", victim, "-n", flux_ns, "--wait=false")
    status = wait_phase(cluster, operator, flux_ns, "lost-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert status["output"] == [8, 8]
    restarted = [t for t in status["tasks"] if t.get("infrastructureRetries")]
    assert len(restarted) == 1, status["tasks"]
    assert restarted[0]["attempts"] == 1
    assert restarted[0]["lastError"]["kind"] == "infrastructure"
