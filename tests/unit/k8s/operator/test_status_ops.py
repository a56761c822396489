"""How the operator writes status: JSON patch, so nulls inside outputs survive."""

from __future__ import annotations

import asyncio

import pytest

from flux.k8s.kube import RUNS, PatchTestFailed
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.status_patch import status_ops, task_record_ops


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
    assert ops.ops[0] == {"op": "test", "path": "/status/phase", "value": "Running"}
    assert status_ops({"phase": "Running"}, {"tasks": []}).ops[0]["op"] == "add"


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


def test_a_patch_from_a_stale_view_fails_instead_of_overwriting() -> None:
    kube = FakeKube()
    seen = {"phase": "Running", "tasks": [{"callId": "a", "state": "Running"}]}
    kube.put(RUNS, {"metadata": {"name": "r1", "namespace": "ns"}, "status": seen})
    # Meanwhile the driver finished the run and its records moved.
    now = {"phase": "Succeeded", "tasks": [{"callId": "b", "state": "Running"}]}
    kube.put(RUNS, {"metadata": {"name": "r1", "namespace": "ns"}, "status": now})
    for ops in (
        status_ops(seen, {"phase": "Failed"}),
        task_record_ops(seen["tasks"], [{"callId": "a", "state": "Completed"}]),
    ):
        with pytest.raises(PatchTestFailed):
            asyncio.run(kube.patch(RUNS, "ns", "r1", ops, status=True))
    assert kube.stored(RUNS, "ns", "r1")["status"] == now  # type: ignore[index]


def test_a_patch_from_a_fresh_view_applies() -> None:
    kube = FakeKube()
    seen = {"phase": "Running", "tasks": [{"callId": "a", "state": "Running"}]}
    kube.put(RUNS, {"metadata": {"name": "r1", "namespace": "ns"}, "status": seen})
    done = [{"callId": "a", "state": "Completed", "output": None}, {"callId": "c", "x": 1}]
    ops = status_ops(seen, {"phase": "Succeeded", "tasks": done})
    written = asyncio.run(kube.patch(RUNS, "ns", "r1", ops, status=True))
    assert written["status"] == {
        "phase": "Succeeded",
        "tasks": [{"callId": "a", "state": "Completed"}, {"callId": "c", "x": 1}],
    }
