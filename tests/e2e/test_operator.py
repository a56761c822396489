"""The operator on the real cluster: WorkflowRuns run as pods and end as they should."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 180


class Operator:
    """The operator as a local process on the test cluster's kubeconfig."""

    def __init__(self, cluster: Cluster, log_path: Path):
        self.cluster = cluster
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "FLUX_KUBECONFIG": self.cluster.kubeconfig,
            "FLUX_DEFAULT_IMAGE": self.cluster.image,
            "FLUX_DRIVER_LINGER_SECONDS": "20",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flux.k8s"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/workflows.flux.dev",
        "crd/workflowruns.flux.dev",
    )


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    print("operator log tail:\n" + op.log_tail())


@pytest.fixture
def flux_ns(cluster: Cluster, namespace: str, operator: Operator) -> str:
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "deploy/driver-rbac.yaml"))
    return namespace


def workflow_manifest(name: str, source: str, function: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"source": source, "function": function, **spec},
    }


def run_manifest(name: str, workflow: str, input: Any = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"workflowRef": {"name": workflow}}
    if input is not None:
        spec["input"] = input
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": spec,
    }


def status_of(cluster: Cluster, ns: str, run: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("workflowrun", run, ns).get("status") or {}
    return status


def wait_phase(
    cluster: Cluster,
    operator: Operator,
    ns: str,
    run: str,
    *phases: str,
    timeout: float = RUN_TIMEOUT,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = status_of(cluster, ns, run)
        return status if status.get("phase") in phases else None

    def describe() -> str:
        status = status_of(cluster, ns, run)
        pods = cluster.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False).stdout
        brief = {k: v for k, v in status.items() if k != "history"}
        return (
            f"status: {json.dumps(brief, indent=1)[:3000]}\npods:\n{pods}\n"
            f"operator log:\n{operator.log_tail()}"
        )

    return cluster.wait_for(f"run {ns}/{run} to reach {phases}", probe, timeout, describe)


def run_pods(cluster: Cluster, ns: str, run: str) -> list[str]:
    out = cluster.kubectl(
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        f"flux.dev/run={run}",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).stdout
    return out.split()


def events_for(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


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
        "wfr/seq-1",
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
    cluster.kubectl(
        "patch",
        "wfr",
        "ap-1",
        "-n",
        flux_ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"resume": {"input": "yes"}}}),
    )
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
    cluster.kubectl("delete", "wfr", "slow-1", "-n", flux_ns, "--wait=false")
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
