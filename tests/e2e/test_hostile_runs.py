"""The WorkflowRun half of the regression catalogue: hostile or broken runs.

Whoever may create a WorkflowRun (or patch status.resume) is not trusted with
the driver's code or its credentials. Each case here ends with the run's
condition saying why, in one line, an Event saying the same, and nothing else
done for the run: no task pod, no archive ConfigMap, one driver at most (no
crash loop). The decoder must never import or call what a value names: the
first case would leave a file behind (in a volume the test reads through a
task) if it did.

All runs go to one namespace, created once; each case is its own test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import (
    events_for,
    run_manifest,
    shared_home_volume,
    status_of,
    wait_phase,
    workflow_manifest,
)

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]

SOURCE = """
import os
import time
from flux import WorkflowExecutionContext, task, workflow


@task
def exists(path: str) -> bool:
    return os.path.exists(path)


@task
def nap(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@workflow
async def probe(ctx: WorkflowExecutionContext[str]) -> bool:
    return await exists(ctx.input)


@workflow
async def counted(ctx: WorkflowExecutionContext[int]) -> int:
    return ctx.input + 1


@workflow
async def sized(ctx: WorkflowExecutionContext[bytes]) -> int:
    return len(ctx.input)


@workflow
async def napping(ctx: WorkflowExecutionContext[int]) -> int:
    return await nap(ctx.input)
"""
WORKFLOWS = ("probe", "counted", "sized", "napping")
PWNED = "/flux/home/pwned"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# name: (workflow, spec.input, reason of the Succeeded condition, words of its message)
FAILING: dict[str, tuple[str, Any, str, str]] = {
    # The issue's payload: a tag naming os.system with its argument.
    "names-os-system": (
        "probe",
        {"$flux": "dataclass", "type": "os:system", "v": {"command": f"touch {PWNED}"}},
        "InvalidInput",
        "input",
    ),
    "wrong-type": ("counted", {"a": 1}, "InvalidInput", "valid integer"),
    "nested-900-deep": ("counted", _nested(900), "InvalidInput", "input"),
    "bytes-bad-base64": ("sized", {"$flux": "bytes", "v": "%%%"}, "InvalidInput", "base64"),
    "no-such-workflow": ("no-such-workflow", 1, "WorkflowNotFound", "no-such-workflow"),
    # A Workflow author who may not create pods must not get API credentials (or a
    # Secret, or the node's files) into task pods through the pods the operator makes.
    "workflow-mounts-a-token": (
        "tokened",
        "/x",
        "WorkflowInvalid",
        "spec.homeVolume must be exactly one volume source of: persistentVolumeClaim",
    ),
}
# Workflows whose spec the operator refuses (Ready False), with the function they name.
REFUSED_WORKFLOWS: dict[str, tuple[str, dict[str, Any]]] = {
    "tokened": (
        "probe",
        {"projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
    ),
}


@pytest.fixture(scope="module")
def hostile_ns(
    cluster: Cluster, operator: Operator, _namespaces: list[str], driver_isolation: list[bool]
) -> Iterator[str]:
    """One namespace for every case (as the conftest's namespace and flux_ns fixtures)."""
    ns = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": {
                    "flux.dev/e2e": "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            },
        },
        namespace="default",
    )
    _namespaces.append(ns)
    cluster.wait_for(
        f"service account {ns}/default",
        lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0,
        timeout=60,
    )
    cluster.kubectl("apply", "-n", ns, "-f", str(REPO / "deploy/driver-rbac.yaml"))
    with shared_home_volume(cluster, ns) as home:
        for name in WORKFLOWS:
            cluster.apply(workflow_manifest(name, SOURCE, name, homeVolume=home), ns)
        for name, (function, volume) in REFUSED_WORKFLOWS.items():
            cluster.apply(workflow_manifest(name, SOURCE, function, homeVolume=volume), ns)
        for run, (workflow, value, _, _) in FAILING.items():
            # create, not apply: apply's last-applied annotation would hold the input twice.
            manifest = run_manifest(run, workflow, value)
            cluster.kubectl("create", "-n", ns, "-f", "-", input=json.dumps(manifest))
        yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _nothing_else(cluster: Cluster, ns: str, run: str, status: dict[str, Any]) -> None:
    """No task ran for the run, nothing was archived, no driver crash-looped."""
    assert not status.get("tasks") and not status.get("taskArchive"), status.get("tasks")
    started = [e for e in status.get("history") or [] if e["type"] == "TASK_STARTED"]
    assert started == [], started
    assert int((status.get("driver") or {}).get("starts", 0)) <= 1, status.get("driver")
    configmaps = cluster.kubectl(
        "get", "configmaps", "-n", ns, "-l", f"flux.dev/run={run}", "-o", "name"
    ).stdout.split()
    assert configmaps == [], configmaps


def _one_event(cluster: Cluster, ns: str, run: str, reason: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next(
            (e for e in events_for(cluster, ns, run) if e["reason"] == reason),
            None,
        )

    event = cluster.wait_for(f"a {reason} Event for {run}", found, 30)
    assert event["type"] == "Warning", event
    message = event["message"]
    assert "\n" not in message.strip() and "Traceback" not in message, message
    return event


@pytest.mark.parametrize("run", sorted(FAILING))
def test_a_hostile_run_fails_with_one_reason_and_nothing_else(
    cluster: Cluster, hostile_ns: str, operator: Operator, run: str
) -> None:
    _, _, reason, words = FAILING[run]
    status = wait_phase(cluster, operator, hostile_ns, run, "Failed", "Succeeded")
    assert status["phase"] == "Failed", (status.get("output"), status.get("error"))
    succeeded = next(c for c in status.get("conditions") or [] if c["type"] == "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("False", reason), succeeded
    assert words in succeeded["message"], succeeded
    assert "Traceback" not in succeeded["message"], succeeded
    _nothing_else(cluster, hostile_ns, run, status)
    event = _one_event(cluster, hostile_ns, run, reason)
    assert words in event["message"], event


def test_decoding_a_run_input_never_runs_what_it_names(
    cluster: Cluster, hostile_ns: str, operator: Operator
) -> None:
    """If the driver had called os.system, the file would be in the runs' shared
    volume now; a task of a later run looks (and first shows it can see the volume)."""
    wait_phase(cluster, operator, hostile_ns, "names-os-system", "Failed", "Succeeded")
    for run, path, expected in (("sees-home", "/flux/home", True), ("sees-pwned", PWNED, False)):
        cluster.apply(run_manifest(run, "probe", path), hostile_ns)
        status = wait_phase(cluster, operator, hostile_ns, run, "Succeeded", "Failed")
        assert status["phase"] == "Succeeded", status.get("error")
        assert status["output"] is expected, (run, status["output"])


def test_a_huge_int_input_is_refused_or_fails_the_run(
    cluster: Cluster, hostile_ns: str, operator: Operator
) -> None:
    """5,000 digits: past Python's int-from-text limit (4,300) and past a float's range."""
    digits = "9" * 5000
    body = (
        '{"apiVersion":"flux.dev/v1alpha1","kind":"WorkflowRun",'
        '"metadata":{"name":"huge-int"},'
        f'"spec":{{"workflowRef":{{"name":"counted"}},"input":{digits}}}}}'
    )
    created = cluster.kubectl(
        "create",
        "--raw",
        f"/apis/flux.dev/v1alpha1/namespaces/{hostile_ns}/workflowruns",
        "-f",
        "-",
        input=body,
        check=False,
    )
    if created.returncode != 0:
        # Refused by the API server, with its reason, and nothing stored.
        stored = cluster.kubectl("get", "fxrun", "-n", hostile_ns, "-o", "name").stdout
        assert "huge-int" not in stored, stored
        assert created.stderr.strip(), created
        return
    status = wait_phase(cluster, operator, hostile_ns, "huge-int", "Failed", "Succeeded")
    assert status["phase"] == "Failed", status.get("output")
    succeeded = next(c for c in status.get("conditions") or [] if c["type"] == "Succeeded")
    assert succeeded["reason"] == "InvalidInput", succeeded
    _nothing_else(cluster, hostile_ns, "huge-int", status)
    _one_event(cluster, hostile_ns, "huge-int", "InvalidInput")


def test_resume_input_on_a_run_that_is_not_paused_is_dropped_with_a_warning(
    cluster: Cluster, hostile_ns: str, operator: Operator
) -> None:
    cluster.apply(run_manifest("not-paused", "napping", 8), hostile_ns)

    def running() -> bool:
        status = status_of(cluster, hostile_ns, "not-paused")
        return any(e["type"] == "TASK_STARTED" for e in status.get("history") or [])

    cluster.wait_for("not-paused to start its task", running, 120, describe=operator.log_tail)
    cluster.kubectl(
        "patch",
        "fxrun",
        "not-paused",
        "-n",
        hostile_ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"resume": {"input": {"$flux": "no-such-tag"}}}}),
    )
    status = wait_phase(cluster, operator, hostile_ns, "not-paused", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    assert status["output"] == 8
    assert "resume" not in status and "pause" not in status
    history = [e["type"] for e in status["history"]]
    assert "TASK_PAUSED" not in history and "TASK_RESUMED" not in history, history
    event = _one_event(cluster, hostile_ns, "not-paused", "ResumeIgnored")
    assert "not paused" in event["message"], event
