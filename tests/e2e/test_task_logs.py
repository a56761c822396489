"""On the cluster, task logs outlive their pods: `flux kube logs` shows each
attempt's log after the run finished and its pods are gone, the last 64 KiB of
a long one, with secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import run_manifest, wait_phase, workflow_manifest

from flux.k8s.log_archive import LOG_TAIL_BYTES
from flux.redaction import MASK

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

SOURCE = """
import json
import os
import time

from flux import WorkflowExecutionContext, task, workflow


@task.with_options(retry_max_attempts=1, retry_delay=1)
def chatty() -> str:
    attempt = json.loads(os.environ["FLUX_TASK"])["attempt"]
    print(f"attempt {attempt} says hello")
    if attempt == 1:
        raise ValueError("the first attempt fails")
    return "ok"


@task
def loud() -> int:
    print("head-marker")
    print("y" * (200 * 1024))
    print("tail-marker")
    return 1


@task.with_options(secret_requests=["API_KEY"])
def tells(secrets: dict = {}) -> str:
    print(f"the token is {secrets['API_KEY']}")
    return "told"


@workflow
async def logged(ctx: WorkflowExecutionContext[None]) -> list:
    return [await chatty(), await loud(), await tells()]


@task
def ticking() -> int:
    for i in range(8):
        print(f"tick {i}", flush=True)
        time.sleep(1)
    return 8


@workflow
async def ticks(ctx: WorkflowExecutionContext[None]) -> int:
    return await ticking()
"""


def flux_kube_logs(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    flux = Path(sys.executable).parent / "flux"
    return subprocess.run(
        [str(flux), "kube", "logs", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "FLUX_KUBECONFIG": cluster.kubeconfig},
        timeout=60,
    )


def task_pods(cluster: Cluster, ns: str, run: str) -> list[str]:
    selector = f"flux.dev/run={run},flux.dev/role=task"
    out = cluster.kubectl(
        "get", "pods", "-n", ns, "-l", selector, "-o", "jsonpath={.items[*].metadata.name}"
    )
    return out.stdout.split()


def of_call(entries: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [e for e in entries if e["calls"][0]["callId"].startswith(prefix)]


@pytest.mark.timeout(420)
def test_task_logs_are_shown_after_their_pods_are_gone(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "api"},
            "stringData": {"token": value},
        },
        flux_ns,
    )
    secrets = {"API_KEY": {"secretName": "api", "key": "token"}}
    cluster.apply(workflow_manifest("logged", SOURCE, "logged", secrets=secrets), flux_ns)
    cluster.apply(run_manifest("logged-1", "logged"), flux_ns)
    done = wait_phase(cluster, operator, flux_ns, "logged-1", "Succeeded", "Failed", timeout=300)
    assert done["phase"] == "Succeeded", json.dumps(done.get("error"))
    cluster.wait_for(
        "the run's task pods to be cleared away",
        lambda: not task_pods(cluster, flux_ns, "logged-1"),
        timeout=60,
    )

    shown = flux_kube_logs(cluster, "logged-1", "-n", flux_ns, "--json")
    assert shown.returncode == 0, shown.stderr
    entries = json.loads(shown.stdout)
    assert not any(e["live"] for e in entries)

    # The task retried once: both attempts' logs, each its own.
    chatty = of_call(entries, "chatty")
    assert [e["calls"][0]["attempt"] for e in chatty] == [1, 2]
    assert "attempt 1 says hello\n" in chatty[0]["log"] and "attempt 2" not in chatty[0]["log"]
    assert "attempt 2 says hello\n" in chatty[1]["log"] and "attempt 1" not in chatty[1]["log"]
    call_id = chatty[0]["calls"][0]["callId"]
    second = flux_kube_logs(cluster, "logged-1", "-n", flux_ns, "--task", call_id, "--attempt", "2")
    assert second.returncode == 0, second.stderr
    assert "attempt 2 says hello" in second.stdout and "attempt 1" not in second.stdout

    # A 200 KiB print: its last 64 KiB are kept.
    (loud,) = of_call(entries, "loud")
    assert loud["truncated"] and loud["missing"] is None
    assert "y\ntail-marker\n" in loud["log"][-200:] and "head-marker" not in loud["log"]
    assert LOG_TAIL_BYTES - 4 <= len(loud["log"].encode()) <= LOG_TAIL_BYTES

    # A secret the task printed is masked in the kept log.
    (tells,) = of_call(entries, "tells")
    assert f"the token is {MASK}\n" in tells["log"]
    assert value not in shown.stdout

    unknown = flux_kube_logs(cluster, "logged-1", "-n", flux_ns, "--task", "nope#0")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: WorkflowRun 'logged-1' has no task call 'nope#0'"


@pytest.mark.timeout(300)
def test_follow_streams_a_running_attempt_until_it_ends(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("ticks", SOURCE, "ticks"), flux_ns)
    cluster.apply(run_manifest("ticks-1", "ticks"), flux_ns)

    def ticking() -> bool:
        shown = flux_kube_logs(cluster, "ticks-1", "-n", flux_ns, "--json")
        return shown.returncode == 0 and any(
            e["running"] and "tick 0" in e["log"] for e in json.loads(shown.stdout)
        )

    cluster.wait_for("the ticking task to run", ticking, timeout=180, interval=1)
    followed = flux_kube_logs(cluster, "ticks-1", "-n", flux_ns, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "; running) <==\n" in followed.stdout
    assert all(f"tick {i}\n" in followed.stdout for i in range(8)), followed.stdout
    done = wait_phase(cluster, operator, flux_ns, "ticks-1", "Succeeded", "Failed")
    assert done["phase"] == "Succeeded"
