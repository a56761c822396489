"""The same task policies on both executors: same outcomes, attempts and event order.

Each scenario runs on the embedded engine (in this process) and as a
WorkflowRun on the cluster, and the two histories must agree call by call.
Attempt counters live in FLUX_HOME, which on the cluster is a volume shared by
the run's pods, so a task can fail its first attempts on either executor.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import (
    POLICY_SCENARIOS,
    POLICY_SOURCE,
    run_manifest,
    wait_phase,
    workflow_manifest,
)

from flux import codec
from flux.local.loader import load_workflow

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e


def per_call(events: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Event types of each task call, in order (workflow events left out)."""
    calls: dict[str, list[str]] = {}
    for source, kind in events:
        if kind.startswith("TASK_"):
            calls.setdefault(source, []).append(kind)
    return calls


def run_locally(
    tmp: Path, scenario: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    monkeypatch.setenv("FLUX_HOME", str(tmp / "home"))
    tmp.mkdir(parents=True, exist_ok=True)
    module = tmp / "parity_scenarios.py"
    module.write_text(POLICY_SOURCE)
    ctx = load_workflow(f"{module}:{scenario}").run(key)
    events = [(e.source_id, e.type.value) for e in ctx.events]
    error = ctx.output if ctx.has_failed else None
    return {
        "state": "Succeeded" if ctx.has_succeeded else "Failed",
        "output": None if ctx.has_failed else ctx.output,
        "error": (error or {}).get("type"),
        "calls": per_call(events),
    }


def summary_of(status: dict[str, Any]) -> dict[str, Any]:
    events = [(e["sourceId"], e["type"]) for e in status.get("history") or []]
    return {
        "state": status["phase"],
        "output": codec.decode(status.get("output")) if status["phase"] == "Succeeded" else None,
        "error": (status.get("error") or {}).get("type"),
        "calls": per_call(events),
    }


@pytest.mark.timeout(600)
def test_policies_behave_the_same_on_both_executors(
    cluster: Cluster,
    flux_ns: str,
    operator: Operator,
    shared_home: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = uuid.uuid4().hex[:6]
    for scenario in POLICY_SCENARIOS:
        name = scenario.replace("_", "-")
        cluster.apply(
            workflow_manifest(name, POLICY_SOURCE, scenario, homeVolume=shared_home), flux_ns
        )
        cluster.apply(run_manifest(name, name, f"k8s-{scenario}-{token}"), flux_ns)
    differences = []
    for scenario in POLICY_SCENARIOS:
        local = run_locally(tmp_path / scenario, scenario, f"local-{scenario}-{token}", monkeypatch)
        status = wait_phase(
            cluster,
            operator,
            flux_ns,
            scenario.replace("_", "-"),
            "Succeeded",
            "Failed",
            timeout=300,
        )
        remote = summary_of(status)
        # Outputs name the key, which differs between the executors by design.
        for result, where in ((local, "local"), (remote, "k8s")):
            if isinstance(result["output"], str):
                result["output"] = result["output"].replace(f"{where}-{scenario}-{token}", "KEY")
        if local != remote:
            differences.append(
                f"{scenario}:\n  local {json.dumps(local)}\n  k8s   {json.dumps(remote)}"
            )
    assert not differences, "\n".join(differences)
    phases = {
        s: cluster.get("fxrun", s.replace("_", "-"), flux_ns)["status"]["phase"]
        for s in POLICY_SCENARIOS
    }
    assert phases == POLICY_SCENARIOS
    # Attempt counts as the cluster recorded them, for the record of this test.
    tasks = {
        t["name"]: t
        for s in POLICY_SCENARIOS
        for t in cluster.get("fxrun", s.replace("_", "-"), flux_ns)["status"].get("tasks", [])
    }
    assert tasks["flaky"]["attempts"] == 3
    assert tasks["always_fails"]["attempts"] == 2
    assert tasks["too_slow"]["lastError"]["type"] == "ExecutionTimeoutError"


# Importing this module takes longer than the timeout: only the body counts.
SLOW_START_SOURCE = """
import time

from flux import WorkflowExecutionContext, task, workflow

time.sleep(4)


def instead() -> str:
    return "fallback"


@task.with_options(timeout=1, fallback=instead)
def quick() -> str:
    time.sleep(0.2)
    return "in time"


@task.with_options(timeout=1, fallback=instead)
def a_little_late() -> str:
    time.sleep(3)
    return "too late"


@workflow
async def timed(ctx: WorkflowExecutionContext) -> dict:
    return {"quick": await quick(), "late": await a_little_late()}
"""


@pytest.mark.timeout(300)
def test_a_timeout_counts_from_the_body_start_on_both_executors(
    cluster: Cluster,
    flux_ns: str,
    operator: Operator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On the cluster the deadline was once the pod's activeDeadlineSeconds,
    # which Kubernetes counts from the pod's start (so a slow import timed a
    # quick body out) and enforces seconds late (so a late body's result won).
    cluster.apply(workflow_manifest("slow-start", SLOW_START_SOURCE, "timed"), flux_ns)
    cluster.apply(run_manifest("slow-start-1", "slow-start"), flux_ns)
    monkeypatch.setenv("FLUX_HOME", str(tmp_path / "home"))
    module = tmp_path / "slow_start.py"
    module.write_text(SLOW_START_SOURCE)
    local = load_workflow(f"{module}:timed").run()
    expected = {"quick": "in time", "late": "fallback"}
    assert local.has_succeeded and local.output == expected
    status = wait_phase(cluster, operator, flux_ns, "slow-start-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert codec.decode(status["output"]) == expected
    late = {t["name"]: t for t in status["tasks"]}["a_little_late"]
    assert late["lastError"]["type"] == "ExecutionTimeoutError"


SECRET_SOURCE = """
import hashlib

from flux import WorkflowExecutionContext, task, workflow


@task.with_options(secret_requests=["API_KEY"])
def fingerprint(label: str, secrets: dict = {}) -> str:
    return label + ":" + hashlib.sha256(secrets["API_KEY"].encode()).hexdigest()


@task
def plain(label: str, secrets: dict | None = None) -> str:
    return f"{label}: secrets given: {secrets is not None}"


@workflow
async def uses_secret(ctx: WorkflowExecutionContext[str]) -> list:
    return [await fingerprint(ctx.input), await plain(ctx.input)]
"""


def test_secrets_reach_only_their_tasks_and_never_status_events_or_logs(
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
    cluster.apply(
        workflow_manifest("secret", SECRET_SOURCE, "uses_secret", secrets=secrets), flux_ns
    )
    missing = {"API_KEY": {"secretName": "no-such-secret", "key": "token"}}
    cluster.apply(
        workflow_manifest("no-secret", SECRET_SOURCE, "uses_secret", secrets=missing), flux_ns
    )
    cluster.apply(run_manifest("secret-1", "secret", "x"), flux_ns)
    cluster.apply(run_manifest("no-secret-1", "no-secret", "x"), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "secret-1", "Succeeded", "Failed")
    assert status["output"] == [
        f"x:{hashlib.sha256(value.encode()).hexdigest()}",
        "x: secrets given: False",
    ]
    failed = wait_phase(
        cluster, operator, flux_ns, "no-secret-1", "Succeeded", "Failed", timeout=90
    )
    assert failed["phase"] == "Failed"
    message = failed["error"]["message"]
    assert "API_KEY" in message and "no-such-secret" in message and "token" in message
    seen = cluster.kubectl("get", "fxrun,events", "-n", flux_ns, "-o", "json").stdout
    assert value not in seen
    assert value not in operator.log_tail(100_000)
