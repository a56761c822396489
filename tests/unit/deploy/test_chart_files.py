"""The Helm chart's static parts: CRD copies, values schema, values table, RBAC parity."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from support import prerequisites

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts/flux"


def _leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        # Free-form objects (resources, security contexts, label maps) are one entry.
        if isinstance(value, dict) and value and path not in _FREE_FORM:
            keys += _leaves(value, path + ".")
        else:
            keys.append(path)
    return keys


_FREE_FORM = {
    "operator.resources",
    "ui.resources",
    "podSecurityContext",
    "securityContext",
    "metrics.grafanaDashboard.labels",
}


def test_the_chart_crds_are_the_generated_ones() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    copied = sorted(p.name for p in (CHART / "files/crds").glob("*.yaml"))
    assert copied == generated
    for name in generated:
        assert (CHART / "files/crds" / name).read_text() == (REPO / "crds" / name).read_text(), (
            f"charts/flux/files/crds/{name} differs from crds/{name}: copy it again"
        )


def test_every_schema_object_forbids_unknown_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], where: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, where
            for key, child in node["properties"].items():
                walk(child, f"{where}.{key}")

    walk(schema, "values")


def test_every_value_is_in_the_schema_and_the_readme_table() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    table = set(re.findall(r"^\| `([^`]+)` \|", (CHART / "README.md").read_text(), re.M))
    for key in _leaves(values):
        assert key in table, f"{key} is missing from the values table in charts/flux/README.md"
        node = schema
        for part in key.split("."):
            assert part in node.get("properties", {}), f"{key} is missing from values.schema.json"
            node = node["properties"][part]


def test_security_defaults_are_restricted() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = values["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def _rules_in(text: str) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """(apiGroups, resources, verbs) of every flow-style rule in a manifest or template."""
    found = re.findall(
        r"- apiGroups: (\[.*?\])\n\s+resources: (\[.*?\])\n\s+verbs: (\[.*?\])", text
    )
    return [tuple(tuple(json.loads(part)) for part in rule) for rule in found]


def test_the_chart_grants_the_operator_exactly_what_deploy_grants() -> None:
    deploy = set(_rules_in((REPO / "deploy/operator-rbac.yaml").read_text()))
    chart = set(_rules_in((CHART / "templates/operator-rbac.yaml").read_text()))
    assert deploy and chart == deploy
    driver_deploy = set(_rules_in((REPO / "deploy/driver-rbac.yaml").read_text()))
    driver_chart = set(_rules_in((CHART / "templates/driver-rbac.yaml").read_text()))
    assert driver_deploy and driver_chart == driver_deploy


def _rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load((CHART / "files/alerts.yaml").read_text())
    return groups


def test_promtool_parses_every_alert_and_dashboard_query(tmp_path: Path) -> None:
    promtool = prerequisites.promtool()
    board = json.loads((CHART / "files/dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    dashboard = {
        "name": "dashboard",
        "rules": [{"record": f"flux:dashboard:{i}", "expr": e} for i, e in enumerate(exprs)],
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [*_rule_groups(), dashboard]}))
    done = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _firing(name: str, summary: str, severity: str = "warning", **labels: str) -> dict[str, Any]:
    return {
        "alertname": name,
        "exp_alerts": [
            {
                "exp_labels": {"severity": severity, **labels},
                "exp_annotations": {"summary": summary},
            }
        ],
    }


def test_every_alert_fires_on_the_series_it_is_about(tmp_path: Path) -> None:
    """Prometheus' own rule engine (promtool test rules) evaluates every alert."""
    promtool = prerequisites.promtool()
    names = {r["alert"] for g in _rule_groups() for r in g["rules"]}
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"groups": _rule_groups()}))
    series = [
        ("flux_build_info", "1+0x120"),
        ('flux_operator_leader{pod="a"}', "1+0x120"),
        ('flux_operator_leader{pod="b"}', "0+0x120"),
        ('flux_runs_finished_total{workflow="etl",outcome="failed"}', "0+1x120"),
        ('flux_runs_finished_total{workflow="etl",outcome="succeeded"}', "0+1x120"),
        ('flux_runs_finished_total{workflow="ok",outcome="succeeded"}', "0+5x120"),
        ('flux_task_timeouts_total{workflow="etl",task="fetch"}', "0+1x120"),
        ('flux_reconcile_duration_seconds_bucket{result="ok",le="1"}', "0+0x120"),
        ('flux_reconcile_duration_seconds_bucket{result="ok",le="2.5"}', "0+10x120"),
        ('flux_reconcile_duration_seconds_bucket{result="ok",le="+Inf"}', "0+10x120"),
        ('flux_kubernetes_api_requests_total{verb="get",resource="pods"}', "0+10x120"),
        ('flux_kubernetes_api_errors_total{verb="get",resource="pods",code="500"}', "0+1x120"),
        ('flux_kubernetes_api_errors_total{verb="get",resource="pods",code="404"}', "0+9x120"),
        ('flux_driver_restarts_total{workflow="etl"}', "0+2x120"),
        # A pod of etl Pending since minute 0; ok's pods start within two minutes.
        ('flux_task_pods_pending_max_age_seconds{workflow="etl"}', "0+60x120"),
        ('flux_task_pods_pending_max_age_seconds{workflow="ok"}', " ".join(["0+60x1"] * 60)),
    ]
    busy = [
        _firing(
            "FluxRunFailureRateHigh",
            "More than 25% of the runs of workflow etl fail.",
            workflow="etl",
        ),
        _firing(
            "FluxTaskTimeouts",
            "Task fetch of etl timed out more than 5 times in an hour.",
            workflow="etl",
            task="fetch",
        ),
        _firing(
            "FluxReconcileSlow", "The 99th percentile of reconcile duration is above 2 seconds."
        ),
        _firing(
            "FluxKubernetesApiErrors",
            "More than 5% of the operator's Kubernetes API requests fail.",
        ),
        _firing(
            "FluxDriverRestartsHigh",
            "Drivers of workflow etl restarted more than 50 times in an hour.",
            severity="info",
            workflow="etl",
        ),
        _firing(
            "FluxTasksPendingTooLong",
            "A task pod of workflow etl has been Pending for more than 10 minutes.",
            workflow="etl",
        ),
        {"alertname": "FluxOperatorDown", "exp_alerts": []},
        {"alertname": "FluxOperatorNoLeader", "exp_alerts": []},
    ]
    down = _firing(
        "FluxOperatorDown", "No Flux operator has been scraped for 10 minutes.", severity="critical"
    )
    tests = {
        "rule_files": ["alerts.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [{"eval_time": "70m", **t} for t in busy],
            },
            {
                # Pending since minute 0: over 600 s at minute 11, for 1m at minute 12.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'flux_task_pods_pending_max_age_seconds{workflow="etl"}',
                        "values": "0+60x30",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "11m", "alertname": "FluxTasksPendingTooLong", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        **_firing(
                            "FluxTasksPendingTooLong",
                            "A task pod of workflow etl has been Pending for more than 10 minutes.",
                            workflow="etl",
                        ),
                    },
                ],
            },
            {
                # Both replicas standing by from minute 0: pending, then firing.
                "interval": "1m",
                "input_series": [
                    {"series": 'flux_operator_leader{pod="a"}', "values": "0+0x10"},
                    {"series": 'flux_operator_leader{pod="b"}', "values": "0+0x10"},
                ],
                "alert_rule_test": [
                    {"eval_time": "0m", "alertname": "FluxOperatorNoLeader", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        **_firing(
                            "FluxOperatorNoLeader",
                            "No Flux operator replica has been the leader for a minute.",
                            severity="critical",
                        ),
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [{"series": "up", "values": "1+0x30"}],
                "alert_rule_test": [
                    {"eval_time": "5m", "alertname": "FluxOperatorDown", "exp_alerts": []},
                    {"eval_time": "15m", **down},
                ],
            },
        ],
    }
    assert {t["alertname"] for t in busy} == names, "every alert needs a test here"
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    done = subprocess.run(
        [str(promtool), "test", "rules", "tests.yaml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
