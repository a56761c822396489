"""The web console on the real cluster: the chart's ui component, deployed in a
namespace that enforces the restricted Pod Security Standard, reads runs with
only its own read-only service account, and headless Chromium reads its pages
through a port-forward to its Service.
"""

from __future__ import annotations

import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from console_deploy import deployed_console, port_forward
from flux_runs import POLICY_SOURCE, run_manifest, wait_phase, workflow_manifest

from browser import Browser, Page, chromium_path
from example_cases import EXAMPLES

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

# run name -> (Workflow name, phase it ends in)
RUNS = {
    "hello": ("hello", "Succeeded"),
    "approval": ("approval", "Paused"),
    "retried": ("retry-then-succeed", "Succeeded"),
    "rolled-back": ("rollback-then-catch", "Succeeded"),
    "failed": ("retries-exhausted", "Failed"),
    "mapped": ("mapping", "Succeeded"),
}


NAPPING = """
import time

from flux import WorkflowExecutionContext, task, workflow


@task
def nap(key: str) -> str:
    print(f"napping for {key}", flush=True)
    time.sleep(40)
    return "rested"


@workflow
async def napping(ctx: WorkflowExecutionContext[str]) -> str:
    return await nap(ctx.input)
"""


def _can(cluster: Cluster, account: str, verb: str, resource: str, namespace: str) -> bool:
    answer = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={account}", check=False
    )
    return answer.stdout.strip() == "yes"


@pytest.mark.timeout(900)
def test_the_console_in_the_cluster_shows_runs_with_read_only_access(
    cluster: Cluster, flux_ns: str, operator: Operator, shared_home: dict[str, Any]
) -> None:
    browser = Browser(chromium_path())
    workflows = {
        "hello": ((EXAMPLES / "hello.py").read_text(), "hello"),
        "approval": ((EXAMPLES / "pause_approval.py").read_text(), "approval_workflow"),
        "mapping": ((EXAMPLES / "map_tasks.py").read_text(), "mapping_workflow"),
        "retry-then-succeed": (POLICY_SOURCE, "retry_then_succeed"),
        "rollback-then-catch": (POLICY_SOURCE, "rollback_then_catch"),
        "retries-exhausted": (POLICY_SOURCE, "retries_exhausted"),
    }
    for name, (source, function) in workflows.items():
        manifest = workflow_manifest(name, source, function, homeVolume=shared_home)
        cluster.apply(manifest, flux_ns)
    key = uuid.uuid4().hex[:6]
    inputs: dict[str, Any] = {"hello": "World", "approval": None, "mapped": None}
    for run, (workflow, _) in RUNS.items():
        cluster.apply(run_manifest(run, workflow, inputs.get(run, key)), flux_ns)
    for run, (_, phase) in RUNS.items():
        wait_phase(cluster, operator, flux_ns, run, phase, timeout=300)

    with deployed_console(cluster, flux_ns) as deployment:
        account = f"system:serviceaccount:{flux_ns}:{deployment}"
        assert _can(cluster, account, "list", "workflowruns.flux.dev", flux_ns)
        assert _can(cluster, account, "get", "pods/log", flux_ns)
        for verb, resource in [
            ("get", "secrets"),
            ("list", "secrets"),
            ("create", "workflowruns.flux.dev"),
            ("patch", "workflowruns.flux.dev/status"),
            ("delete", "pods"),
            ("update", "configmaps"),
        ]:
            assert not _can(cluster, account, verb, resource, flux_ns), (verb, resource)
        assert not _can(cluster, account, "list", "workflowruns.flux.dev", "default")

        with port_forward(cluster, flux_ns, deployment) as url:
            _check_pages(browser, url, flux_ns)
            _check_a_call_in_flight(cluster, browser, url, flux_ns)


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _check_a_call_in_flight(cluster: Cluster, browser: Browser, url: str, namespace: str) -> None:
    """While a task's pod runs, its bar shows the pod's stages and its record the log."""
    cluster.apply(workflow_manifest("napping", NAPPING, "napping"), namespace)
    cluster.apply(run_manifest("napping", "napping", "sleepy"), namespace)
    run_url, call_url = (
        f"{url}/runs/{namespace}.napping",
        f"{url}/runs/{namespace}.napping/calls/nap%230",
    )
    cluster.wait_for(
        "the napping task's pod to run",
        lambda: "mark k-pod-running" in _fetch(run_url),
        timeout=120,
        describe=lambda: _fetch(run_url)[-3000:],
    )
    cluster.wait_for("the napping task's log", lambda: "napping for sleepy" in _fetch(call_url), 60)
    page = browser.dom(run_url)
    marks = page.attribute_of("data-call", "nap#0", "data-marks") or ""
    assert {"pod-queued", "pod-starting", "pod-running"} <= set(marks.split()), marks
    assert "pod running" in page.text()  # the legend names the stages
    record = browser.dom(call_url)
    assert "napping for sleepy" in record.by_id("call-logs")
    browser.screenshot(run_url, "console-k8s-pod-running")


def _check_pages(browser: Browser, url: str, namespace: str) -> None:
    def run_page(run: str) -> Page:
        return browser.dom(f"{url}/runs/{namespace}.{run}")

    runs = browser.dom(url + "/runs", wait_ms=4000)
    rows = runs.by_id("run-rows")
    assert runs.by_id("run-count") == f"{len(RUNS)} runs"
    for run in RUNS:
        assert f"{namespace}.{run}" in rows
    assert int(runs.attribute("run-rows", "data-live-refreshes") or 0) >= 1
    browser.screenshot(url + "/runs", "console-k8s-runs")

    hello = run_page("hello")
    assert hello.by_id("run-state") == "COMPLETED"
    assert hello.by_id("run-output") == '"Hello, World"'
    assert list(hello.rows("data-node")) == ["start", "say_hello", "completed"]

    paused = run_page("approval")
    assert paused.by_id("run-state") == "PAUSED"
    assert paused.by_id("resume-command") == (
        f"kubectl patch fxrun approval -n {namespace} --subresource=status --type=merge "
        """-p '{"status":{"resume":{"input":JSON}}}'"""
    )
    browser.screenshot(f"{url}/runs/{namespace}.approval", "console-k8s-paused")

    retried = run_page("retried")
    row = retried.rows("data-call")["flaky#0"].split()
    assert row[1:3] == ["COMPLETED", "3"]  # status, attempts
    assert 'data-call="flaky#0" data-marks="attempt-failed retry-wait"' in retried.dom
    browser.screenshot(f"{url}/runs/{namespace}.retried", "console-k8s-retried")

    rolled = run_page("rolled-back")
    assert 'data-call="breaks#0" data-marks="rollback"' in rolled.dom

    failed = run_page("failed")
    assert failed.by_id("run-state") == "FAILED"
    assert "KeyError" in failed.by_id("run-error")

    mapped = run_page("mapped")
    assert "\u00d73" in mapped.rows("data-node")["process_item"]

    history = browser.dom(f"{url}/runs/{namespace}.retried/events").text()
    assert "TASK_RETRY_STARTED" in history
    workflows = browser.dom(url + "/workflows").text()
    assert "retries-exhausted" in workflows and "0%" in workflows
