"""Helpers for e2e tests that submit Workflows and WorkflowRuns."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from support.volumes import claim, host_path_volume

if TYPE_CHECKING:
    from conftest import Cluster


class HasLog(Protocol):
    """An operator whose log a failing wait shows: the local process or the chart's pod."""

    def log_tail(self, lines: int = 60) -> str: ...


RUN_TIMEOUT = 180

# Task-policy scenarios: runs that retry, exhaust their retries into a fallback,
# roll back, time out into a fallback, and fail. The policy parity test runs them
# on both executors; the chart test runs them under the chart-installed operator,
# so that every metric and dashboard panel of those policies has data. Attempt
# counters live in FLUX_HOME: give the Workflows a homeVolume all of a run's pods
# share (see shared_home).
POLICY_SOURCE = '''
import os
import time
from pathlib import Path

from flux import ExecutionError, WorkflowExecutionContext, task, workflow
from flux.tasks import parallel


def attempt_number(key: str) -> int:
    """How many times this key was tried, across processes and pods."""
    home = Path(os.environ.get("FLUX_HOME", "."))
    home.mkdir(parents=True, exist_ok=True)
    counter = home / f"{key}.count"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    return count


@task.with_options(retry_max_attempts=3, retry_delay=1, retry_backoff=2)
def flaky(key: str) -> int:
    n = attempt_number(key)
    if n < 3:
        raise ValueError(f"attempt {n} failed")
    return n


def fallback_value(key: str) -> str:
    return f"fallback for {key}"


@task.with_options(retry_max_attempts=1, retry_delay=1, fallback=fallback_value)
def always_fails(key: str) -> str:
    raise RuntimeError("no luck")


def undo(key: str) -> None:
    attempt_number(key + "-undone")


@task.with_options(rollback=undo)
def breaks(key: str) -> str:
    raise OSError("disk full")


@task.with_options(timeout=1, fallback=fallback_value)
def too_slow(key: str) -> str:
    time.sleep(60)
    return "late"


@task.with_options(retry_max_attempts=1, retry_delay=1)
def gives_up(key: str) -> str:
    raise KeyError(key)


@task
def fails_fast(key: str) -> str:
    raise ValueError("first to fail")


def undo_slow(key: str) -> None:
    attempt_number(key + "-slow-undone")


@task.with_options(rollback=undo_slow)
def slow_step(key: str) -> str:
    time.sleep(30)
    return "slow"


@workflow
async def parallel_failure_rolls_back(ctx: WorkflowExecutionContext[str]) -> str:
    try:
        await parallel(slow_step(ctx.input), fails_fast(ctx.input))
    except ExecutionError as error:
        return f"caught {type(error.inner_exception).__name__}"
    return "not reached"


@workflow
async def retry_then_succeed(ctx: WorkflowExecutionContext[str]) -> int:
    return await flaky(ctx.input)


@workflow
async def exhausted_to_fallback(ctx: WorkflowExecutionContext[str]) -> str:
    return await always_fails(ctx.input)


@workflow
async def rollback_then_catch(ctx: WorkflowExecutionContext[str]) -> str:
    try:
        return await breaks(ctx.input)
    except ExecutionError as error:
        return f"caught {type(error.inner_exception).__name__}"


@workflow
async def timeout_to_fallback(ctx: WorkflowExecutionContext[str]) -> str:
    return await too_slow(ctx.input)


@workflow
async def retries_exhausted(ctx: WorkflowExecutionContext[str]) -> str:
    return await gives_up(ctx.input)
'''

# Each scenario (a workflow function of POLICY_SOURCE) and the phase its run ends in.
POLICY_SCENARIOS = {
    "retry_then_succeed": "Succeeded",
    "exhausted_to_fallback": "Succeeded",
    "rollback_then_catch": "Succeeded",
    "timeout_to_fallback": "Succeeded",
    "retries_exhausted": "Failed",
}


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
    operator: HasLog,
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


@contextmanager
def shared_home_volume(cluster: Cluster, namespace: str) -> Iterator[dict[str, Any]]:
    """A ReadWriteMany volume all pods of a run can reach (a Workflow's homeVolume):
    a host directory on the local cluster, FLUX_E2E_RWX_STORAGE_CLASS elsewhere."""
    volume_name = f"flux-home-{namespace}"
    if cluster.local:
        # On the local single-node cluster: a host directory as a static volume.
        path = tempfile.mkdtemp(prefix="flux-e2e-home-")
        os.chmod(path, 0o1777)
        cluster.apply(host_path_volume(volume_name, path), "default")
        manifest = claim("flux-home", volume_name)
    else:
        storage_class = os.environ.get("FLUX_E2E_RWX_STORAGE_CLASS")
        if not storage_class:
            pytest.fail(
                "set FLUX_E2E_RWX_STORAGE_CLASS to a ReadWriteMany storage class of "
                "the cluster under test (needed by examples/configured_task.py and "
                "the task-policy scenarios)"
            )
        manifest = claim("flux-home")
        manifest["spec"]["storageClassName"] = storage_class
    cluster.apply(manifest, namespace)
    try:
        yield {"persistentVolumeClaim": {"claimName": "flux-home"}}
    finally:
        if cluster.local:
            cluster.kubectl(
                "delete", "pvc", "flux-home", "-n", namespace, "--wait=false", check=False
            )
            cluster.kubectl("delete", "pv", volume_name, "--wait=false", check=False)


def _archived(cluster: Cluster, ns: str, refs: list[dict[str, Any]]) -> list[Any]:
    """Items of archive ConfigMaps, read with kubectl and checked as the operator does."""
    from flux.k8s import archive

    items: list[Any] = []
    for ref in refs:
        configmap = cluster.get("configmap", ref["configMap"], ns)
        archive.check_entry(configmap, ref)
        items.extend(archive.read_payload(configmap))
    return items


def full_history(cluster: Cluster, ns: str, run: str) -> list[dict[str, Any]]:
    """The run's whole history: archived chunks, then what is still in status."""
    status = status_of(cluster, ns, run)
    return [*_archived(cluster, ns, status.get("historyArchive") or []), *status.get("history", [])]


def all_task_records(cluster: Cluster, ns: str, run: str) -> list[dict[str, Any]]:
    status = status_of(cluster, ns, run)
    return [*_archived(cluster, ns, status.get("taskArchive") or []), *status.get("tasks", [])]


def output_of(cluster: Cluster, ns: str, run: str) -> Any:
    status = status_of(cluster, ns, run)
    if status.get("outputRef"):
        from flux.k8s import archive

        configmap = cluster.get("configmap", status["outputRef"]["configMap"], ns)
        archive.check_entry(configmap, status["outputRef"])
        return archive.read_payload(configmap)
    return status.get("output")


def resume(cluster: Cluster, ns: str, run: str, value: Any) -> None:
    """Resume a paused run as a user does: a merge patch of status.resume."""
    patch_status(cluster, ns, run, {"resume": {"input": value}})


def patch_status(cluster: Cluster, ns: str, run: str, status: dict[str, Any]) -> None:
    """A merge patch of a run's status, as a user (or a hostile one) may write it."""
    patch = {"status": status}
    cluster.kubectl(
        "patch",
        "fxrun",
        run,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
