"""Per-task pod settings (task.with_options(resources=, node_selector=, tolerations=,
image=)) on the real cluster: what the pods get, and what the policy makes of them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from flux_runs import all_task_records, full_history, run_manifest, wait_phase, workflow_manifest

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

# The Workflow's defaults, which each task's own settings replace for its pods.
TASK_DEFAULTS: dict[str, Any] = {
    "resources": {"requests": {"cpu": "20m"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
}

OOM = """
from flux import WorkflowExecutionContext, task, workflow


@task.with_options(
    resources={"requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    retry_max_attempts=1,
    retry_delay=0,
)
def hog(megabytes: int) -> int:
    block = b"x" * (megabytes << 20)  # written, so every page counts
    return len(block)


@workflow
async def oom(ctx: WorkflowExecutionContext[int]) -> int:
    return await hog(ctx.input)
"""


def test_a_task_past_its_memory_limit_is_oomkilled_and_retried_as_code(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(workflow_manifest("oom", OOM, "oom", taskDefaults=TASK_DEFAULTS), flux_ns)
    cluster.apply(run_manifest("oom-1", "oom", 512), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "oom-1", "Succeeded", "Failed")
    assert status["phase"] == "Failed", status.get("output")

    (record,) = all_task_records(cluster, flux_ns, "oom-1")
    assert record["attempts"] == 2, record
    assert record["lastError"]["reason"] == "OOMKilled", record
    assert record["lastError"]["kind"] == "code", record
    assert "more memory than its limit" in record["lastError"]["message"]
    history = full_history(cluster, flux_ns, "oom-1")
    started = next(e for e in history if e["type"] == "TASK_STARTED")
    assert started["value"]["pod"] == {
        "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    }
    (retry,) = [e for e in history if e["type"] == "TASK_RETRY_STARTED"]
    assert retry["value"]["error"]["kind"] == "code"
    assert retry["value"]["error"]["reason"] == "OOMKilled"


NOWHERE = """
from flux import WorkflowExecutionContext, task, workflow


@task.with_options(
    node_selector={"flux.dev/e2e-no-such-node": "true"},
    tolerations=[{"key": "flux.dev/e2e", "operator": "Exists", "effect": "NoSchedule"}],
    resources={
        "requests": {"cpu": "10m", "memory": "32Mi"},
        "limits": {"memory": "96Mi", "ephemeral-storage": "64Mi"},
    },
)
def nowhere() -> str:
    return "never runs"


@workflow
async def stranded(ctx: WorkflowExecutionContext[None]) -> str:
    return await nowhere()
"""


def test_task_pod_settings_reach_the_pod_and_an_unschedulable_one_fails_in_time(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    cluster.apply(
        workflow_manifest("stranded", NOWHERE, "stranded", taskDefaults=TASK_DEFAULTS), flux_ns
    )
    cluster.apply(run_manifest("stranded-1", "stranded"), flux_ns)

    def task_pod() -> dict[str, Any] | None:
        selector = "flux.dev/run=stranded-1,flux.dev/role=task"
        pods = cluster.kubectl("get", "pods", "-n", flux_ns, "-l", selector, "-o", "json")
        items = json.loads(pods.stdout)["items"]
        return items[0] if items else None

    pod = cluster.wait_for("the task pod of stranded-1", task_pod, 90)
    spec = pod["spec"]
    container = spec["containers"][0]
    resources = container["resources"]
    assert resources["limits"] == {"memory": "96Mi", "ephemeral-storage": "64Mi"}
    # The API server fills in a request from a limit that has none.
    assert resources["requests"] == {"cpu": "10m", "memory": "32Mi", "ephemeral-storage": "64Mi"}
    assert spec["nodeSelector"] == {"flux.dev/e2e-no-such-node": "true"}  # not the Workflow's
    assert {"key": "flux.dev/e2e", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    # What every task pod keeps: the Workflow's image, no token, the restricted context.
    assert container["image"] == cluster.image
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False

    status = wait_phase(
        cluster, operator, flux_ns, "stranded-1", "Succeeded", "Failed", timeout=240
    )
    assert status["phase"] == "Failed"
    (record,) = all_task_records(cluster, flux_ns, "stranded-1")
    assert record["lastError"]["type"] == "PodStartError", record
    assert record["lastError"]["reason"] == "Unschedulable", record
    assert record["lastError"]["kind"] == "unstartable", record


IMAGES = """
from flux import WorkflowExecutionContext, task, workflow


@task.with_options(image="{image}")
def same_image() -> str:
    return "ran"


@task.with_options(image="docker.io/library/busybox:1.36")
def other_image() -> str:
    return "never runs"


@workflow
async def images(ctx: WorkflowExecutionContext[None]) -> list[str]:
    first = await same_image()
    try:
        await other_image()
    except Exception as exc:
        return [first, type(exc).__name__]
    return [first, "other image ran"]
"""


def test_a_task_image_other_than_the_workflows_is_refused_unless_the_operator_allows_it(
    cluster: Cluster, flux_ns: str, operator: Operator
) -> None:
    source = IMAGES.replace("{image}", cluster.image)
    cluster.apply(workflow_manifest("images", source, "images"), flux_ns)
    cluster.apply(run_manifest("images-1", "images"), flux_ns)
    status = wait_phase(cluster, operator, flux_ns, "images-1", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status.get("error")
    # The Workflow's own image is always allowed; another one only on the
    # operator's allow-list, which the test operator leaves empty.
    assert status["output"] == ["ran", "ExecutionError"]
    records = {r["name"]: r for r in all_task_records(cluster, flux_ns, "images-1")}
    refused = records["other_image"]
    assert refused["attempts"] == 0, refused  # no pod was ever made
    assert refused["lastError"]["type"] == "PodSettingsRefused", refused
    assert "FLUX_ALLOWED_TASK_IMAGES" in refused["lastError"]["message"], refused
