"""A driver's credentials write only its own runs (deploy/driver-isolation-policy.yaml).

RBAC gives every pod of the flux-driver account the right to patch the status
of every run in its namespace. Here a real driver pod's token (a TokenRequest
bound to the pod, as the kubelet mounts it) is refused on any run but its own,
a shared driver's on runs of other Workflows, a pod that is not (or no longer)
the run's driver is refused on it, and a token bound to no pod on everything.
Task pods have no API credentials at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from driver_tokens import As, driver_token, refused
from flux_runs import status_of, workflow_manifest

from flux.k8s.pods import shared_driver_pod_name, source_configmap_name

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

# The task naps long enough for the drivers (linger 20 s in the suite) to be up
# while the test acts with their tokens.
NAPPING = """
import time
from flux import WorkflowExecutionContext, task, workflow


@task
def nap(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@workflow
async def napping(ctx: WorkflowExecutionContext[int]) -> int:
    return await nap(ctx.input)
"""
NAP = 45
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def _run(name: str, workflow: str) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, "input": NAP},
    }


@pytest.fixture
def runs(cluster: Cluster, flux_ns: str) -> str:
    """Workflow "napping" (a driver per run) with runs mine and theirs, and
    "napping-shared" (one shared driver) with run shared-mine; all napping."""
    cluster.apply(workflow_manifest("napping", NAPPING, "napping"), flux_ns)
    shared = workflow_manifest("napping-shared", NAPPING, "napping", driverMode="Shared")
    cluster.apply(shared, flux_ns)
    for name, workflow in (
        ("mine", "napping"),
        ("theirs", "napping"),
        ("shared-mine", "napping-shared"),
    ):
        cluster.apply(_run(name, workflow), flux_ns)
    return flux_ns


def _running_pod(cluster: Cluster, ns: str, name: str) -> bool:
    found = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    if found.returncode != 0:
        return False
    pod = json.loads(found.stdout)
    return pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def _driver_of(cluster: Cluster, operator: Operator, ns: str, run: str) -> str:
    """The run's per-run driver pod, once it runs: the one its status names."""

    def probe() -> str | None:
        pod = (status_of(cluster, ns, run).get("driver") or {}).get("pod")
        return pod if pod and _running_pod(cluster, ns, pod) else None

    return cluster.wait_for(f"the driver pod of {run}", probe, 120, describe=operator.log_tail)


def test_a_per_run_driver_writes_its_own_run_and_no_other(
    cluster: Cluster, runs: str, operator: Operator
) -> None:
    ns = runs
    pod = _driver_of(cluster, operator, ns, "mine")
    driver = As(cluster, driver_token(cluster, ns, pod))
    # A patch that changes nothing still goes through admission: allowed on its
    # own run, refused on another (so the refusal is the policy's, not a no-op's).
    unchanged = [{"op": "test", "path": "/status/driver/pod", "value": pod}]
    own = driver.patch_status(ns, "mine", unchanged)
    assert own.status == 200, own.message
    for run in ("theirs", "shared-mine"):
        attempt = driver.patch_status(ns, run, {"status": {"phase": "Succeeded"}}, "merge")
        assert refused(attempt, f"pod {pod} is not the driver of WorkflowRun {ns}/{run}"), (
            attempt.message
        )
        # Its own driver may have moved it from Pending meanwhile, but no run
        # ends within the nap.
        assert status_of(cluster, ns, run).get("phase") in (None, "Pending", "Running")
    # Nor may it say another pod drives its own run.
    moved = [{"op": "replace", "path": "/status/driver/pod", "value": "elsewhere"}]
    assert refused(driver.patch_status(ns, "mine", moved), "may not change status.driver")


def test_a_driver_writes_no_configmap_but_an_archive_and_events_only_about_runs(
    cluster: Cluster, runs: str, operator: Operator
) -> None:
    ns = runs
    pod = _driver_of(cluster, operator, ns, "mine")
    driver = As(cluster, driver_token(cluster, ns, pod))
    planted = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "planted"}}
    assert refused(driver.create(ns, planted), "only archive ConfigMaps")
    # The Workflow's inline source is immutable (no one rewrites it); a revision
    # planted next to it would be code a run's record could name.
    revision = cluster.get("workflow", "napping", ns)["status"]["revision"]
    source = cluster.get("configmap", source_configmap_name("napping", revision), ns)
    assert source["immutable"] is True
    planted = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": source_configmap_name("napping", "0" * 12),
            "labels": source["metadata"]["labels"],
        },
        "data": {k: "raise SystemExit('planted')" for k in source["data"]},
    }
    assert refused(driver.create(ns, planted), "only archive ConfigMaps")
    kept = cluster.get("configmap", source_configmap_name("napping", revision), ns)
    assert "planted" not in json.dumps(kept["data"])

    def event(kind: str, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": "probe."},
            "involvedObject": {
                "apiVersion": "flux.dev/v1alpha1" if kind == "WorkflowRun" else "v1",
                "kind": kind,
                "name": name,
                "namespace": ns,
            },
            "type": "Normal",
            "reason": "Probe",
            "message": "probe",
        }

    assert refused(driver.create(ns, event("Pod", pod)), "Events only about WorkflowRuns")
    about_run = driver.create(ns, event("WorkflowRun", "mine"))
    assert about_run.status == 201, about_run.message


def test_a_shared_driver_writes_only_runs_of_its_workflow(
    cluster: Cluster, runs: str, operator: Operator
) -> None:
    ns = runs
    pod = shared_driver_pod_name("napping-shared")

    def claimed_and_up() -> bool:
        shared = (status_of(cluster, ns, "shared-mine").get("driver") or {}).get("shared")
        return bool(shared) and _running_pod(cluster, ns, pod)

    cluster.wait_for("the shared driver", claimed_and_up, 120, describe=operator.log_tail)
    driver = As(cluster, driver_token(cluster, ns, pod))
    unchanged = [{"op": "test", "path": "/status/driver/shared", "value": True}]
    own = driver.patch_status(ns, "shared-mine", unchanged)
    assert own.status == 200, own.message
    attempt = driver.patch_status(ns, "mine", {"status": {"phase": "Failed"}}, "merge")
    words = f"pod {pod} is not the driver of WorkflowRun {ns}/mine"
    assert refused(attempt, words), attempt.message
    assert status_of(cluster, ns, "mine").get("phase") != "Failed"


def test_a_pod_that_is_not_the_runs_driver_is_refused(
    cluster: Cluster, runs: str, operator: Operator
) -> None:
    """Any other pod of the driver account: a driver the operator replaced and
    that is still terminating, or a pod someone started with the account."""
    ns = runs
    _driver_of(cluster, operator, ns, "mine")
    other = cluster.pod_manifest(
        "not-the-driver",
        ["-c", "import time; time.sleep(300)"],
        serviceAccountName="flux-driver",
    )
    cluster.apply(other, ns)
    cluster.wait_for(
        "pod not-the-driver to run", lambda: _running_pod(cluster, ns, "not-the-driver"), 90
    )
    driver = As(cluster, driver_token(cluster, ns, "not-the-driver"))
    current = status_of(cluster, ns, "mine")["driver"]["pod"]
    unchanged = [{"op": "test", "path": "/status/driver/pod", "value": current}]
    attempt = driver.patch_status(ns, "mine", unchanged)
    assert refused(attempt, f"pod not-the-driver is not the driver of WorkflowRun {ns}/mine")


def test_a_driver_token_bound_to_no_pod_is_refused(
    cluster: Cluster, runs: str, operator: Operator
) -> None:
    ns = runs
    _driver_of(cluster, operator, ns, "mine")
    unbound = As(cluster, driver_token(cluster, ns))
    unchanged = [{"op": "test", "path": "/metadata/name", "value": "mine"}]
    attempt = unbound.patch_status(ns, "mine", unchanged)
    assert refused(attempt, "bound to the driver's pod"), attempt.message


def test_task_pods_have_no_api_credentials(cluster: Cluster, runs: str, operator: Operator) -> None:
    ns = runs

    def a_running_task_pod() -> dict[str, Any] | None:
        listed = cluster.kubectl(
            "get", "pods", "-n", ns, "-l", "flux.dev/role=task", "-o", "json"
        ).stdout
        for pod in json.loads(listed)["items"]:
            if pod["status"].get("phase") == "Running":
                return dict(pod)
        return None

    pod = cluster.wait_for(
        "a running task pod", a_running_task_pod, 120, describe=operator.log_tail
    )
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    for volume in spec.get("volumes") or []:
        sources = (volume.get("projected") or {}).get("sources") or []
        assert not any("serviceAccountToken" in s for s in sources), volume
    # And from inside: no token where clients look for one.
    name = pod["metadata"]["name"]
    looked = cluster.kubectl(
        "exec",
        name,
        "-n",
        ns,
        "--",
        "python",
        "-c",
        f"import os; print(os.path.exists({TOKEN_PATH!r}))",
    )
    assert looked.stdout.strip() == "False"
