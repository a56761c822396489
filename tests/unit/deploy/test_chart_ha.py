"""The chart's operator is highly available: two replicas that take turns holding
a Lease, probes, a PodDisruptionBudget, anti-affinity, and RBAC for the Lease
in the release namespace only."""

from __future__ import annotations

from typing import Any

from support.helm import render_chart

SELECTOR = {
    "app.kubernetes.io/name": "flux",
    "app.kubernetes.io/instance": "r",
    "app.kubernetes.io/component": "operator",
}


def _operator(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "r-flux"
    ]
    return deployment


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_two_replicas_roll_one_at_a_time_with_probes_and_the_lease_settings() -> None:
    deployment = _operator(render_chart())
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["selector"]["matchLabels"] == SELECTOR
    [container] = spec["template"]["spec"]["containers"]
    assert "--probes=0.0.0.0:8080" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "healthz"}
    env = _env(container)
    assert env["FLUX_LEADER_ELECTION"] == "true"
    assert env["FLUX_LEASE_NAME"] == "r-flux"
    assert env["FLUX_LEASE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert (
        env["FLUX_LEASE_DURATION_SECONDS"],
        env["FLUX_LEASE_RENEW_DEADLINE_SECONDS"],
        env["FLUX_LEASE_RETRY_SECONDS"],
    ) == ("8", "6", "1")
    [term] = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": SELECTOR},
    }


def test_a_disruption_budget_keeps_one_replica() -> None:
    [pdb] = [o for o in render_chart() if o["kind"] == "PodDisruptionBudget"]
    assert pdb["metadata"]["namespace"] == "flux-workflows"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}
    # One replica: a budget of one would block every drain of its node.
    assert [
        o for o in render_chart("operator.replicas=1") if o["kind"] == "PodDisruptionBudget"
    ] == []


def test_the_lease_rbac_is_a_role_in_the_release_namespace() -> None:
    objects = render_chart()
    [role] = [
        o
        for o in objects
        if o["kind"] == "Role" and o["metadata"]["name"] == "r-flux-leader-election"
    ]
    assert role["metadata"]["namespace"] == "flux-workflows"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    [binding] = [
        o
        for o in objects
        if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "r-flux-leader-election"
    ]
    assert binding["roleRef"]["name"] == "r-flux-leader-election"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "r-flux", "namespace": "flux-workflows"}
    ]
    # Nowhere else: no cluster-wide grant on Leases.
    for other in objects:
        if other["kind"] in ("ClusterRole", "Role") and other is not role:
            assert all("leases" not in rule["resources"] for rule in other.get("rules", []))


def test_without_leader_election_replicas_never_overlap() -> None:
    deployment = _operator(
        render_chart("operator.leaderElection.enabled=false", "operator.replicas=1")
    )
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert _env(container)["FLUX_LEADER_ELECTION"] == "false"


def test_an_affinity_given_replaces_the_default_spread() -> None:
    deployment = _operator(
        render_chart(
            "operator.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone"
        )
    )
    affinity = deployment["spec"]["template"]["spec"]["affinity"]
    assert "podAntiAffinity" not in affinity and "nodeAffinity" in affinity
