"""A WorkflowRun stays within its size budget on the real cluster, and reads back whole.

Large task outputs, a large workflow output and a history past its inline
budget move to ConfigMaps owned by the run; a large input comes from a
ConfigMap named by spec.inputFrom.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flux_runs import (
    events_for,
    full_history,
    output_of,
    run_manifest,
    status_of,
    wait_phase,
    workflow_manifest,
)

from flux.k8s import archive

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

BIG = """
from flux import WorkflowExecutionContext, task, workflow


@task
def blob(i: int, size: int) -> str:
    return str(i) * size


@workflow
async def big_values(ctx: WorkflowExecutionContext[dict]) -> list[str]:
    return [await blob(i, ctx.input["size"]) for i in range(ctx.input["count"])]


@workflow
async def measure(ctx: WorkflowExecutionContext[list]) -> int:
    return len(ctx.input)
"""


def _flux_kube_show(cluster: Cluster, ns: str, run: str) -> subprocess.CompletedProcess[str]:
    flux = Path(sys.executable).parent / "flux"
    env = {**os.environ, "FLUX_KUBECONFIG": cluster.kubeconfig}
    return subprocess.run(
        [str(flux), "kube", "show", run, "-n", ns, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _stored_size(cluster: Cluster, ns: str, run: str) -> int:
    return len(cluster.kubectl("get", "fxrun", run, "-n", ns, "-o", "json").stdout.encode())


def test_large_outputs_and_a_long_history_move_out_of_the_run(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("big", BIG, "big_values"), flux_ns)
    count, size = 5, 30_000
    cluster.apply(run_manifest("big-1", "big", {"count": count, "size": size}), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "big-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert status.get("historyArchive"), "a history of 150 KB outgrew its inline budget"
    assert "output" not in status and status["outputRef"]
    assert _stored_size(cluster, flux_ns, "big-1") < archive.RUN_BUDGET

    expected = [str(i) * size for i in range(count)]
    assert output_of(cluster, flux_ns, "big-1") == expected
    history = full_history(cluster, flux_ns, "big-1")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    outputs = [e["value"] for e in history if e["type"] == "TASK_COMPLETED"]
    assert outputs == expected
    shown = _flux_kube_show(cluster, flux_ns, "big-1")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["phase"], view["output"]) == ("Succeeded", expected)
    assert view["history"] == history and len(view["tasks"]) == count
    missing = _flux_kube_show(cluster, flux_ns, "no-such-run")
    assert missing.returncode == 2
    assert f"WorkflowRun 'no-such-run' not found in namespace {flux_ns!r}" in missing.stderr

    owned = cluster.kubectl(
        "get", "configmaps", "-n", flux_ns, "-l", "flux.dev/run=big-1", "-o", "name"
    ).stdout.split()
    assert len(owned) >= 2  # history chunk(s) and the output, at least

    cluster.kubectl("delete", "fxrun", "big-1", "-n", flux_ns)
    cluster.wait_for(
        "the run's ConfigMaps to be garbage-collected",
        lambda: (
            not cluster.kubectl(
                "get", "configmaps", "-n", flux_ns, "-l", "flux.dev/run=big-1", "-o", "name"
            ).stdout.strip()
        ),
        60,
    )


def test_a_large_input_comes_from_a_configmap_and_a_missing_one_fails_clearly(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("measure", BIG, "measure"), flux_ns)
    items = list(range(60_000))  # about 350 KB of JSON: too large for spec.input
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "measure-input"},
        "data": {"input.json": json.dumps(items)},
    }
    # create, not apply: apply's last-applied annotation cannot hold 350 KB.
    cluster.kubectl("create", "-n", flux_ns, "-f", "-", input=json.dumps(configmap))
    ref = {"configMapKeyRef": {"name": "measure-input", "key": "input.json"}}
    run = run_manifest("measure-1", "measure")
    run["spec"]["inputFrom"] = ref
    cluster.apply(run, flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "measure-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert status["output"] == len(items)
    assert _stored_size(cluster, flux_ns, "measure-1") < archive.RUN_BUDGET

    missing = run_manifest("measure-2", "measure")
    missing["spec"]["inputFrom"] = {"configMapKeyRef": {"name": "nowhere", "key": "input.json"}}
    cluster.apply(missing, flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "measure-2", "Failed")
    assert "ConfigMap 'nowhere' not found" in status["error"]["message"]

    def invalid_input() -> bool:
        conditions = status_of(cluster, flux_ns, "measure-2").get("conditions") or []
        return any(c["type"] == "Succeeded" and c["reason"] == "InvalidInput" for c in conditions)

    # The driver fails the run; the operator then sets the condition and the Event.
    cluster.wait_for("the Succeeded condition to say InvalidInput", invalid_input, 30)
    cluster.wait_for(
        "an InvalidInput Event naming the ConfigMap",
        lambda: any(
            e["reason"] == "InvalidInput" and "nowhere" in e["message"]
            for e in events_for(cluster, flux_ns, "measure-2")
        ),
        30,
    )

    both = run_manifest("measure-3", "measure", [1])
    both["spec"]["inputFrom"] = ref
    cluster.apply(both, flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "measure-3", "Failed")
    assert status["error"]["message"].endswith("set spec.input or spec.inputFrom, not both")
    assert status_of(cluster, flux_ns, "measure-1")["phase"] == "Succeeded"
