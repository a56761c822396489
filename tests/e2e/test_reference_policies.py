"""Whoever writes a resource may read what it names (issue 12).

The driver may read every ConfigMap of its namespace and copies the key a run's
spec.inputFrom names into the run's history, where its creator reads it back;
task pods get the Secret keys a Workflow's spec.secrets maps. Without
deploy/reference-policies.yaml anyone allowed to create WorkflowRuns reads any
ConfigMap, and anyone allowed to write Workflows any Secret, of the namespace.
The requests here are made with the token of a service account that may create
runs and Workflows but read only one ConfigMap and one Secret, as a user of a
shared cluster would be set up; `dryRun=All` runs admission without storing
anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cluster
from driver_tokens import Answer, As, refused

pytestmark = pytest.mark.e2e

POLICY = Path(__file__).resolve().parents[2] / "deploy/reference-policies.yaml"
CREATOR = "run-creator"


@pytest.fixture(scope="module")
def reference_policies(cluster: Cluster, crds: None) -> Iterator[None]:
    cluster.kubectl("apply", "-f", str(POLICY))
    yield
    # The cluster is shared with other checkouts: leave no policy behind.
    cluster.kubectl("delete", "-f", str(POLICY), "--ignore-not-found", check=False)


def _creator(cluster: Cluster, ns: str) -> As:
    """May create runs and Workflows, and read ConfigMap and Secret "public" only."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": CREATOR},
        "rules": [
            {
                "apiGroups": ["flux.dev"],
                "resources": ["workflowruns", "workflows"],
                "verbs": ["create", "get", "list"],
            },
            {
                "apiGroups": [""],
                "resources": ["configmaps", "secrets"],
                "resourceNames": ["public"],
                "verbs": ["get"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": CREATOR},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": CREATOR},
        "subjects": [{"kind": "ServiceAccount", "name": CREATOR, "namespace": ns}],
    }
    cluster.kubectl("create", "serviceaccount", CREATOR, "-n", ns)
    cluster.apply(role, ns)
    cluster.apply(binding, ns)
    token = cluster.kubectl("create", "token", CREATOR, "-n", ns, "--duration=10m").stdout
    return As(cluster, token.strip())


def _configmap(cluster: Cluster, ns: str, name: str, value: Any) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"input.json": json.dumps(value)},
    }
    cluster.apply(manifest, ns)


def _run(name: str, configmap: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"workflowRef": {"name": "any"}}
    if configmap is None:
        spec["input"] = "plain"
    else:
        spec["inputFrom"] = {"configMapKeyRef": {"name": configmap, "key": "input.json"}}
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": spec,
    }


def _workflow(secret: str) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": f"uses-{secret}"},
        "spec": {
            "entrypoint": "examples.hello:hello",
            "secrets": {
                "fine": {"secretName": "public", "key": "v"},
                "token": {"secretName": secret, "key": "v"},
            },
        },
    }


def _create(who: As, ns: str, obj: dict[str, Any]) -> Answer:
    plural = {"WorkflowRun": "workflowruns", "Workflow": "workflows"}[obj["kind"]]
    path = f"/apis/flux.dev/v1alpha1/namespaces/{ns}/{plural}?dryRun=All"
    return who.request("POST", path, obj, "application/json")


def test_a_run_reads_its_input_only_from_a_configmap_its_creator_may_read(
    cluster: Cluster, namespace: str, reference_policies: None
) -> None:
    _configmap(cluster, namespace, "private", {"password": "not for run creators"})
    _configmap(cluster, namespace, "public", "hello")
    creator = _creator(cluster, namespace)

    # The API server loads a new policy in the background: wait until it holds.
    steal = _run("steal", "private")
    answer = cluster.wait_for(
        "the run-input policy to be enforced",
        lambda: (a := _create(creator, namespace, steal)).status == 403 and a,
        30,
    )
    assert refused(
        answer,
        f"system:serviceaccount:{namespace}:{CREATOR} may not get ConfigMap {namespace}/private",
        "so a run may not read its input from it",
    ), answer

    allowed = _create(creator, namespace, _run("fine", "public"))
    assert allowed.status == 201, allowed.body
    plain = _create(creator, namespace, _run("plain", None))
    assert plain.status == 201, plain.body
    # Nothing was stored: every request was a dry run.
    listed = json.loads(cluster.kubectl("get", "fxrun", "-n", namespace, "-o", "json").stdout)
    assert listed["items"] == []


def test_a_workflow_maps_only_secrets_its_writer_may_read(
    cluster: Cluster, namespace: str, reference_policies: None
) -> None:
    for name in ("private", "public"):
        cluster.kubectl("create", "secret", "generic", name, "-n", namespace, "--from-literal=v=x")
    creator = _creator(cluster, namespace)

    steal = _workflow("private")
    answer = cluster.wait_for(
        "the workflow-secrets policy to be enforced",
        lambda: (a := _create(creator, namespace, steal)).status == 403 and a,
        30,
    )
    assert refused(
        answer,
        f"system:serviceaccount:{namespace}:{CREATOR} may not get every Secret in {namespace}",
        "that the Workflow maps to its tasks (it maps: ",
        "private",
    ), answer
    allowed = _create(creator, namespace, _workflow("public"))
    assert allowed.status == 201, allowed.body
    listed = json.loads(cluster.kubectl("get", "workflows", "-n", namespace, "-o", "json").stdout)
    assert listed["items"] == []
