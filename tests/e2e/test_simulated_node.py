"""The simulated node `flux-sim` (kwok, cluster/scripts/sim-node.sh): pods that
select it complete without containers, reporting what their annotations say,
and no other pod lands there."""

from __future__ import annotations

import ipaddress
import json
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

pytestmark = pytest.mark.e2e

DEFAULT_MESSAGE = '{"outcome":"completed"}'
# What a caller puts in a pod spec to run it on the simulated node.
SIM_SELECTOR = {"type": "kwok"}
SIM_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def sim_node(cluster: Cluster) -> str:
    """The simulated node's name, once it is Ready (a missing node fails the run)."""
    name = cluster.facts.get("SIM_NODE_NAME", "flux-sim")

    def ready() -> bool:
        proc = cluster.kubectl(
            "get",
            "node",
            name,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False,
        )
        return proc.returncode == 0 and proc.stdout == "True"

    if cluster.kubectl("get", "node", name, check=False).returncode != 0:
        pytest.fail(
            f"node {name} not found: `make cluster-up` starts kwok and creates it "
            "(cluster/scripts/sim-node.sh)",
            pytrace=False,
        )
    cluster.wait_for(f"node {name} Ready", ready, timeout=60, describe=lambda: _node(cluster, name))
    return name


def _node(cluster: Cluster, name: str) -> str:
    proc = cluster.kubectl("describe", "node", name, check=False)
    return proc.stdout + proc.stderr


def sim_pod(
    cluster: Cluster,
    name: str,
    annotations: dict[str, str] | None = None,
    *,
    tolerate: bool = True,
) -> dict[str, Any]:
    """A task-shaped pod for the simulated node (the container never runs)."""
    spec: dict[str, Any] = {"nodeSelector": SIM_SELECTOR}
    if tolerate:
        spec["tolerations"] = [SIM_TOLERATION]
    manifest = cluster.pod_manifest(name, ["-c", "raise SystemExit('must not run')"], **spec)
    if annotations:
        manifest["metadata"]["annotations"] = annotations
    return manifest


_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_SUFFIXES.update({f"{p}i": 2 ** (10 * (n + 1)) for n, p in enumerate("KMGTP")})


def _quantity(text: str) -> float:
    """A Kubernetes resource quantity ("16k", "64Ti", "500m") as a number."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return float(text)


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    assert len(statuses) == 1, statuses
    return statuses[0].get("state", {}).get("terminated") or {}


def test_node_is_ready_and_marked_fake(cluster: Cluster, sim_node: str) -> None:
    node = cluster.get("node", sim_node)
    meta, spec, status = node["metadata"], node["spec"], node["status"]
    assert meta["annotations"].get("kwok.x-k8s.io/node") == "fake"
    assert meta["labels"].get("type") == "kwok"
    assert {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"} in spec["taints"]
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", status["conditions"]
    # Room for 10,000+ task pods of the suite's usual request (10m CPU, 128Mi).
    allocatable = {k: _quantity(v) for k, v in status["allocatable"].items()}
    assert allocatable["pods"] >= 10_000, status["allocatable"]
    assert allocatable["cpu"] >= 10_000 * 0.010, status["allocatable"]
    assert allocatable["memory"] >= 10_000 * 128 * 2**20, status["allocatable"]


def test_200_pods_complete_with_the_default_message(
    cluster: Cluster, namespace: str, sim_node: str, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 200
    items = [sim_pod(cluster, f"sim-{i:03d}") for i in range(count)]
    started = time.monotonic()
    cluster.kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        timeout=120,
    )
    created = time.monotonic() - started

    def phases() -> list[str]:
        out = cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-o",
            'jsonpath={range .items[*]}{.status.phase}{"\\n"}{end}',
        ).stdout
        return out.split()

    def all_succeeded() -> bool:
        got = phases()
        return len(got) == count and all(p == "Succeeded" for p in got)

    def summary() -> str:
        got = phases()
        return f"{len(got)} pods: " + ", ".join(f"{p}={got.count(p)}" for p in sorted(set(got)))

    cluster.wait_for(
        f"{count} pods on {sim_node} to succeed", all_succeeded, timeout=180, describe=summary
    )
    took = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\n{count} pods on {sim_node}: all Succeeded {took:.1f}s after the create began "
            f"(create took {created:.1f}s)"
        )

    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert len(pods) == count
    pod_cidr = ipaddress.ip_network(cluster.facts.get("SIM_POD_CIDR", "10.213.128.0/18"))
    ips = set()
    for pod in pods:
        name, status = pod["metadata"]["name"], pod["status"]
        assert pod["spec"]["nodeName"] == sim_node, name
        assert status["phase"] == "Succeeded", name
        terminated = _terminated(pod)
        assert terminated["exitCode"] == 0, (name, terminated)
        assert terminated["reason"] == "Completed", (name, terminated)
        assert terminated["message"] == DEFAULT_MESSAGE, (name, terminated)
        assert terminated["startedAt"] and terminated["finishedAt"], (name, terminated)
        # A fake address in the simulated node's guarded range: no real network.
        assert ipaddress.ip_address(status["podIP"]) in pod_cidr, (name, status["podIP"])
        ips.add(status["podIP"])
    assert len(ips) == count, "pod IPs must be unique"


def test_result_annotation_becomes_the_termination_message(
    cluster: Cluster, namespace: str, sim_node: str
) -> None:
    result = json.dumps({"outcome": "completed", "value": ["ünï", 'a "quoted"\nline', 42]})
    cluster.apply(sim_pod(cluster, "with-result", {"flux.dev/simulated-result": result}), namespace)
    pod = cluster.wait_terminated(namespace, "with-result", timeout=60)
    assert pod["status"]["phase"] == "Succeeded"
    terminated = _terminated(pod)
    assert terminated["exitCode"] == 0
    assert terminated["message"] == result


def test_exit_code_annotation_fails_the_pod(
    cluster: Cluster, namespace: str, sim_node: str
) -> None:
    cluster.apply(sim_pod(cluster, "fails", {"flux.dev/simulated-exit-code": "7"}), namespace)
    pod = cluster.wait_terminated(namespace, "fails", timeout=60)
    assert pod["status"]["phase"] == "Failed"
    terminated = _terminated(pod)
    assert terminated["exitCode"] == 7, terminated
    assert terminated["reason"] == "Error", terminated
    assert terminated["startedAt"] and terminated["finishedAt"], terminated


def test_pods_without_the_toleration_never_land_on_the_simulated_node(
    cluster: Cluster, namespace: str, sim_node: str
) -> None:
    # Selecting the simulated node without tolerating its taint: unschedulable.
    cluster.apply(sim_pod(cluster, "no-toleration", tolerate=False), namespace)

    def unschedulable() -> dict[str, Any] | None:
        pod = cluster.get("pod", "no-toleration", namespace)
        for c in pod.get("status", {}).get("conditions", []):
            if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                return pod
        return None

    pod = cluster.wait_for(
        "pod no-toleration to be reported unschedulable",
        unschedulable,
        timeout=60,
        describe=lambda: cluster.describe("pod", "no-toleration", namespace),
    )
    assert "taint" in next(
        c.get("message", "") for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"
    )
    # Ordinary pods go to the real node, although the simulated one looks far emptier.
    for i in range(3):
        cluster.apply(cluster.pod_manifest(f"ordinary-{i}", ["-c", "pass"]), namespace)

    def placed() -> list[str] | None:
        nodes = [
            cluster.get("pod", f"ordinary-{i}", namespace)["spec"].get("nodeName") for i in range(3)
        ]
        return nodes if all(nodes) else None

    nodes = cluster.wait_for("ordinary pods to be scheduled", placed, timeout=60)
    assert sim_node not in nodes, nodes
    pod = cluster.get("pod", "no-toleration", namespace)
    assert not pod["spec"].get("nodeName"), pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"
