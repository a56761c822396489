"""The admission policies by which a driver pod's credentials write only its own runs.

Their behaviour is proven on a real API server (tests/e2e/test_driver_isolation.py);
these pin what the manifests say and that the chart and deploy/ say the same,
and that the names the policies compare are the ones the operator gives.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from flux.k8s.config import OperatorConfig
from flux.k8s.pods import shared_driver_pod, task_pod
from flux.k8s.protocol import Step, TaskSpec
from flux.k8s.reconcile import Observed, plan_run

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy/driver-isolation-policy.yaml"
TEMPLATE = REPO / "charts/flux/templates/driver-isolation-policy.yaml"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _deployed() -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in _docs(DEPLOY.read_text())}


def _chart_as_deployed(release_fullname: str = "flux", driver: str = "flux-driver") -> str:
    """The template with its few template actions done by hand (no helm needed)."""
    text = TEMPLATE.read_text()
    text = "\n".join(
        line for line in text.splitlines() if not re.fullmatch(r"\s*\{\{-.*\}\}", line)
    )
    text = text.replace("{{ $fullname }}", release_fullname).replace("{{ $driver }}", driver)
    assert "{{" not in text, "a template action the test does not know"
    return text


def _without_labels(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "labels"}}


def test_deploy_binds_each_policy_to_deny() -> None:
    docs = _deployed()
    policies = {n.split("/")[1] for n in docs if n.startswith("ValidatingAdmissionPolicy/")}
    assert policies == {"flux-driver-runs", "flux-driver-objects"}
    for name in policies:
        policy = docs[f"ValidatingAdmissionPolicy/{name}"]
        binding = docs[f"ValidatingAdmissionPolicyBinding/{name}"]
        assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}


def test_only_requests_of_the_driver_account_are_matched() -> None:
    for name in ("flux-driver-runs", "flux-driver-objects"):
        spec = _deployed()[f"ValidatingAdmissionPolicy/{name}"]["spec"]
        (condition,) = spec["matchConditions"]
        assert "request.userInfo.username" in condition["expression"]
        assert "':flux-driver'" in condition["expression"]


def test_runs_policy_covers_run_writes_and_compares_the_pod_with_the_run() -> None:
    spec = _deployed()["ValidatingAdmissionPolicy/flux-driver-runs"]["spec"]
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["workflowruns", "workflowruns/status"]
    assert rule["operations"] == ["UPDATE"]  # a JSON or merge patch is an UPDATE here
    variables = {v["name"]: v["expression"] for v in spec["variables"]}
    assert POD_NAME_KEY in variables["pod"]
    assert "oldObject.status.driver.pod == variables.pod" in variables["perRunDriver"]
    assert "oldObject.spec.workflowRef.name + '-shared-driver'" in variables["sharedDriver"]
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert "variables.pod != ''" in expressions  # no pod-bound token: refused
    assert "variables.perRunDriver || variables.sharedDriver" in expressions
    assert "object.status.driver == oldObject.status.driver" in expressions


def test_objects_policy_keeps_drivers_to_archive_configmaps_and_run_events() -> None:
    spec = _deployed()["ValidatingAdmissionPolicy/flux-driver-objects"]["spec"]
    covered = {
        (r, op)
        for rule in spec["matchConstraints"]["resourceRules"]
        for r in rule["resources"]
        for op in rule["operations"]
    }
    assert covered == {("configmaps", "CREATE"), ("configmaps", "UPDATE"), ("events", "CREATE")}
    expressions = " ".join(v["expression"] for v in spec["validations"])
    assert POD_NAME_KEY in expressions
    assert "startsWith('archive-')" in expressions
    assert "o.kind == 'WorkflowRun'" in expressions
    assert "object.involvedObject.kind == 'WorkflowRun'" in expressions


def test_the_chart_renders_what_deploy_applies() -> None:
    chart = {f"{d['kind']}/{d['metadata']['name']}": d for d in _docs(_chart_as_deployed())}
    deployed = _deployed()
    assert chart.keys() == deployed.keys()
    for name, doc in deployed.items():
        assert _without_labels(chart[name]) == doc, name


def test_the_chart_names_its_own_driver_account() -> None:
    text = _chart_as_deployed(driver="team-driver")
    for doc in _docs(text):
        if doc["kind"] == "ValidatingAdmissionPolicy":
            assert "':team-driver'" in doc["spec"]["matchConditions"][0]["expression"]
            assert "flux-driver'" not in str(doc["spec"])


def test_the_chart_installs_the_policies_unless_turned_off() -> None:
    values = yaml.safe_load((REPO / "charts/flux/values.yaml").read_text())
    assert values["driver"]["isolationPolicy"]["enabled"] is True
    assert TEMPLATE.read_text().splitlines()[1] == (
        "{{- if .Values.driver.isolationPolicy.enabled }}"
    )


# The names the policies compare are the ones the operator gives.

WORKFLOW = {
    "apiVersion": "flux.dev/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "orders", "namespace": "team", "uid": "w-1", "generation": 1},
    "spec": {"entrypoint": "app:orders", "driverMode": "Shared"},
    "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]},
}


def _run(name: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name, "namespace": "team", "uid": f"u-{name}", "generation": 1},
        "spec": {"workflowRef": {"name": "orders"}},
        "status": status or {},
    }


def test_the_shared_driver_pod_is_named_as_the_policy_expects() -> None:
    pod = shared_driver_pod(WORKFLOW, OperatorConfig())
    # The policy's sharedDriver: spec.workflowRef.name + '-shared-driver'.
    assert pod["metadata"]["name"] == "orders-shared-driver"
    assert pod["spec"]["serviceAccountName"] == OperatorConfig().driver_service_account


def test_the_per_run_driver_pod_is_recorded_in_status_with_its_creation() -> None:
    per_run = {**WORKFLOW, "spec": {"entrypoint": "app:orders"}}
    observed = Observed(_run("r1"), per_run, [], dt.datetime.now(dt.UTC))
    plan = plan_run(observed, OperatorConfig())
    (driver,) = [p for p in plan.create if p["metadata"]["labels"]["flux.dev/role"] == "driver"]
    # The policy's perRunDriver: oldObject.status.driver.pod == the pod asking.
    assert plan.status["driver"]["pod"] == driver["metadata"]["name"]


def test_task_pods_get_no_api_credentials() -> None:
    spec = TaskSpec(run="r1", call_id="c1", name="t", task="app:t", step=Step.ATTEMPT, attempt=1)
    pod = task_pod(_run("r1"), WORKFLOW, OperatorConfig(), spec, "r1-c1")
    assert pod["spec"]["automountServiceAccountToken"] is False
