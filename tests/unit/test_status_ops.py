"""How the operator writes status: JSON patch, so nulls inside outputs survive."""

from __future__ import annotations

from flux.k8s.operator import status_ops


def test_a_status_is_created_when_the_run_has_none() -> None:
    ops = status_ops(None, {"phase": "Pending"})
    assert ops == [
        {"op": "add", "path": "/status", "value": {}},
        {"op": "add", "path": "/status/phase", "value": "Pending"},
    ]


def test_task_records_keep_nulls_in_outputs_but_drop_cleared_fields() -> None:
    record = {"callId": "a#0", "state": "Completed", "output": {"x": None}, "pod": None}
    ops = status_ops({"phase": "Running"}, {"tasks": [record]})
    assert ops == [
        {
            "op": "add",
            "path": "/status/tasks",
            "value": [{"callId": "a#0", "state": "Completed", "output": {"x": None}}],
        }
    ]


def test_none_removes_a_field_only_when_it_is_there() -> None:
    assert status_ops({"phase": "Running", "error": {}}, {"error": None}) == [
        {"op": "remove", "path": "/status/error"}
    ]
    assert status_ops({"phase": "Running"}, {"error": None}) == []
