"""Least privilege, as written in the manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def rules(file: str) -> list[dict[str, Any]]:
    docs = list(yaml.safe_load_all((DEPLOY / file).read_text()))
    return [rule for doc in docs if doc["kind"] in ("Role", "ClusterRole") for rule in doc["rules"]]


def test_the_operator_has_no_access_to_secrets() -> None:
    for rule in rules("operator-rbac.yaml"):
        assert "secrets" not in rule["resources"] and "*" not in rule["resources"], rule
        assert "*" not in rule["verbs"], rule


def test_drivers_only_read_runs_write_their_status_keep_their_archive_and_post_events() -> None:
    granted = {
        (r, v)
        for rule in rules("driver-rbac.yaml")
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == {
        ("workflowruns", "get"),
        ("workflowruns", "list"),
        ("workflowruns", "watch"),
        ("workflowruns/status", "patch"),
        ("configmaps", "get"),
        ("configmaps", "create"),
        ("configmaps", "update"),
        ("events", "create"),
    }


def test_the_operator_may_start_and_delete_runs_for_schedules() -> None:
    granted = {
        (r, v)
        for rule in rules("operator-rbac.yaml")
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert {("workflowruns", "create"), ("workflowruns", "delete")} <= granted
