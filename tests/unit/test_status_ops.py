"""How the operator writes status: JSON patch, so nulls inside outputs survive."""

from __future__ import annotations

from flux.k8s.operator import status_ops


def test_a_status_is_created_only_when_the_run_still_has_none() -> None:
    ops = status_ops(None, {"phase": "Pending"})
    # A shared driver's claim may have written a status since this pass looked.
    assert ops == [
        {"op": "test", "path": "/status", "value": None},
        {"op": "add", "path": "/status", "value": {}},
        {"op": "add", "path": "/status/phase", "value": "Pending"},
    ]


def test_the_phase_and_its_condition_move_only_from_the_phase_seen() -> None:
    ops = status_ops({"phase": "Running"}, {"phase": "Failed", "conditions": []})
    assert ops[0] == {"op": "test", "path": "/status/phase", "value": "Running"}
    assert status_ops({"phase": "Running"}, {"tasks": []})[0]["op"] == "add"


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
