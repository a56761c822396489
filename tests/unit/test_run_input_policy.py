"""The admission policy by which spec.inputFrom names only a ConfigMap the run's
creator may read. Its behaviour is proven on a real API server
(tests/e2e/test_run_input_policy.py); these pin the manifests and that the chart
and deploy/ say the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy/run-input-policy.yaml"
TEMPLATE = REPO / "charts/flux/templates/run-input-policy.yaml"


def _docs(text: str) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(text) if d}


def _chart_as_deployed(release_fullname: str = "flux") -> str:
    text = "\n".join(
        line
        for line in TEMPLATE.read_text().splitlines()
        if not re.fullmatch(r"\s*\{\{-.*\}\}", line)
    )
    text = text.replace("{{ $fullname }}", release_fullname)
    assert "{{" not in text, "a template action the test does not know"
    return text


def test_the_policy_asks_the_authorizer_about_the_named_configmap() -> None:
    docs = _docs(DEPLOY.read_text())
    spec = docs["ValidatingAdmissionPolicy/flux-run-input"]["spec"]
    assert spec["failurePolicy"] == "Fail"
    [rule] = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["workflowruns"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    [check] = spec["validations"]
    assert "authorizer.group('').resource('configmaps')" in check["expression"]
    assert ".name(object.spec.inputFrom.configMapKeyRef.name).check('get')" in check["expression"]
    binding = docs["ValidatingAdmissionPolicyBinding/flux-run-input"]["spec"]
    assert binding == {"policyName": "flux-run-input", "validationActions": ["Deny"]}


def test_the_chart_renders_what_deploy_applies_and_installs_it_by_default() -> None:
    deployed = _docs(DEPLOY.read_text())
    chart = _docs(_chart_as_deployed())
    assert chart.keys() == deployed.keys()
    for name, doc in deployed.items():
        labelled = chart[name]
        meta = {k: v for k, v in labelled["metadata"].items() if k != "labels"}
        assert {**labelled, "metadata": meta} == doc, name
    values = yaml.safe_load((REPO / "charts/flux/values.yaml").read_text())
    assert values["rbac"]["runInputPolicy"]["enabled"] is True
    assert TEMPLATE.read_text().splitlines()[1] == "{{- if .Values.rbac.runInputPolicy.enabled }}"
