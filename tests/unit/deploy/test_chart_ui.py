"""The chart's web console component: off by default, read-only, restricted.

The template's RBAC rules are read as text; the rendered chart (helm template,
with the pinned helm the cluster scripts build) is checked when that helm is
there: the unit suite can run before any cluster was ever built.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from support.helm import render_chart

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts/flux"
READ_VERBS = {"get", "list", "watch"}


def _rules(text: str) -> list[tuple[list[str], list[str], list[str]]]:
    found = re.findall(
        r"- apiGroups: (\[.*?\])\n\s+resources: (\[.*?\])\n\s+verbs: (\[.*?\])", text
    )
    return [(json.loads(g), json.loads(r), json.loads(v)) for g, r, v in found]


def test_the_console_may_only_read_runs_their_configmaps_and_pod_logs() -> None:
    rules = _rules((CHART / "templates/ui-rbac.yaml").read_text())
    assert rules
    granted = {(g, r) for groups, resources, _ in rules for g in groups for r in resources}
    assert granted == {
        ("flux.dev", "workflows"),
        ("flux.dev", "workflowruns"),
        ("", "configmaps"),
        ("", "pods"),
        ("", "pods/log"),
    }
    for _, resources, verbs in rules:
        assert set(verbs) <= READ_VERBS, (resources, verbs)


def test_the_console_is_off_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["ui"]["enabled"] is False


def _ui(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "ui"
    ]


def test_rendered_without_ui_there_is_no_console() -> None:
    assert _ui(render_chart()) == []


def test_rendered_console_is_restricted_and_has_only_its_read_only_account() -> None:
    objects = _ui(render_chart("ui.enabled=true"))
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    by_kind = {o["kind"]: o for o in objects}
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind["ServiceAccount"]["metadata"]["name"] == "r-flux-ui"
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["args"][:2] == ["-m", "flux.ui"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    text = json.dumps(by_kind["Deployment"])
    assert "secret" not in text.lower()  # no Secret volume, env or envFrom
    binding = by_kind["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == by_kind["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "r-flux-ui", "namespace": "flux-workflows"}
    ]
    for rule in by_kind["ClusterRole"]["rules"]:
        assert set(rule["verbs"]) <= READ_VERBS and "secrets" not in rule["resources"]


def test_rendered_console_of_some_namespaces_is_bound_only_there() -> None:
    objects = _ui(render_chart("ui.enabled=true", "watchNamespaces={a,b}"))
    bindings = [o for o in objects if o["kind"].endswith("Binding")]
    assert sorted((o["kind"], o["metadata"]["namespace"]) for o in bindings) == [
        ("RoleBinding", "a"),
        ("RoleBinding", "b"),
    ]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "FLUX_UI_NAMESPACES", "value": "a,b"} in env
    only_c = _ui(render_chart("ui.enabled=true", "watchNamespaces={a,b}", "ui.namespaces={c}"))
    assert [o["metadata"]["namespace"] for o in only_c if o["kind"] == "RoleBinding"] == ["c"]
