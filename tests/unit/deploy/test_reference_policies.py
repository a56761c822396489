"""The admission policies by which whoever writes a resource may read what it names:
a run's spec.inputFrom ConfigMap, a Workflow's spec.secrets Secrets. Their
behaviour is proven on a real API server (tests/e2e/test_reference_policies.py);
these pin the manifests and that the chart and deploy/ say the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy/reference-policies.yaml"
TEMPLATE = REPO / "charts/flux/templates/reference-policies.yaml"


def _docs(text: str) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text) if d}


def _chart_as_deployed(release_fullname: str = "flux") -> str:
    """The template with its few template actions done by hand (no helm needed)."""
    text = "\n".join(
        line
        for line in TEMPLATE.read_text().splitlines()
        if not re.fullmatch(r"\s*\{\{-.*\}\}", line)
    )
    text = text.replace("{{ $fullname }}", release_fullname)
    assert "{{" not in text, "a template action the test does not know"
    return text


def _policy(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _docs(DEPLOY.read_text())[f"ValidatingAdmissionPolicy/{name}"]["spec"]
    assert spec["failurePolicy"] == "Fail"
    binding = _docs(DEPLOY.read_text())[f"ValidatingAdmissionPolicyBinding/{name}"]["spec"]
    assert binding == {"policyName": name, "validationActions": ["Deny"]}
    return spec


def test_a_run_input_is_read_only_from_a_configmap_its_creator_may_get() -> None:
    spec = _policy("flux-run-input")
    [rule] = spec["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["workflowruns"], ["CREATE", "UPDATE"])
    [check] = spec["validations"]
    assert "authorizer.group('').resource('configmaps')" in check["expression"]
    assert ".name(object.spec.inputFrom.configMapKeyRef.name)" in check["expression"]
    assert ".check('get').allowed()" in check["expression"]


def test_a_workflow_maps_only_secrets_its_writer_may_get_whenever_its_spec_changes() -> None:
    spec = _policy("flux-workflow-secrets")
    [rule] = spec["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["workflows"], ["CREATE", "UPDATE"])
    # Any change of the spec is checked (new code could send the secrets anywhere),
    # metadata edits are not.
    [condition] = spec["matchConditions"]
    assert "oldObject.spec != object.spec" in condition["expression"]
    [unreadable] = spec["variables"]
    assert "authorizer.group('').resource('secrets')" in unreadable["expression"]
    assert ".name(object.spec.secrets[n].secretName)" in unreadable["expression"]
    assert [v["expression"] for v in spec["validations"]] == ["size(variables.unreadable) == 0"]


def test_the_chart_renders_what_deploy_applies_and_installs_it_by_default() -> None:
    deployed = _docs(DEPLOY.read_text())
    chart = _docs(_chart_as_deployed())
    assert chart.keys() == deployed.keys()
    for name, doc in deployed.items():
        labelled = chart[name]
        meta = {k: v for k, v in labelled["metadata"].items() if k != "labels"}
        assert {**labelled, "metadata": meta} == doc, name
    values = yaml.safe_load((REPO / "charts/flux/values.yaml").read_text())
    assert values["rbac"]["referencePolicies"]["enabled"] is True
    first = TEMPLATE.read_text().splitlines()[1]
    assert first == "{{- if .Values.rbac.referencePolicies.enabled }}"
