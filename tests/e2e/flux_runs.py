"""Helpers for e2e tests that submit Workflows and WorkflowRuns."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Cluster, Operator

RUN_TIMEOUT = 180


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
