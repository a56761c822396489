"""`flux kube show`'s read of a run: archived parts read back, failures in one line."""

from __future__ import annotations

import asyncio

import pytest

from flux.k8s import archive
from flux.k8s.inspect import KubeAccessError, RunNotFoundError, read_run
from flux.k8s.kube import CONFIGMAPS, RUNS, Forbidden, KubeError, Unreachable
from flux.k8s.kube.fake import FakeKube


def _cluster() -> FakeKube:
    kube = FakeKube()
    owner = {"metadata": {"name": "r1", "namespace": "ns", "uid": "u"}}
    name = archive.value_name("r1", "output")
    stored = kube.put(
        CONFIGMAPS, archive.configmap(owner, name, archive.VALUE, archive.pack({"big": 1}))
    )
    kube.put(
        RUNS,
        {
            "metadata": {"name": "r1", "namespace": "ns"},
            "spec": {"workflowRef": {"name": "wf"}},
            "status": {
                "phase": "Succeeded",
                "history": [{"id": 1, "type": "WORKFLOW_STARTED"}],
                "tasks": [{"callId": "a#0", "state": "Completed"}],
                "outputRef": archive.entry(stored, 1),
            },
        },
    )
    return kube


def test_a_run_is_read_back_whole() -> None:
    view = asyncio.run(read_run("ns", "r1", _cluster()))
    assert view["workflow"] == "wf" and view["phase"] == "Succeeded"
    assert view["output"] == {"big": 1}
    assert [e["id"] for e in view["history"]] == [1]
    assert [r["callId"] for r in view["tasks"]] == ["a#0"]


def test_a_missing_run_is_not_found() -> None:
    with pytest.raises(RunNotFoundError, match="WorkflowRun 'r2' not found in namespace 'ns'"):
        asyncio.run(read_run("ns", "r2", _cluster()))


def test_a_refusal_and_an_unreachable_server_are_one_line_each() -> None:
    kube = _cluster()
    kube.fail("get", RUNS, Forbidden("workflowruns is forbidden", reason="Forbidden"))
    with pytest.raises(KubeAccessError, match="refused to show WorkflowRun ns/r1: 403 Forbidden"):
        asyncio.run(read_run("ns", "r1", kube))
    kube.fail("get", RUNS, Unreachable("GET /apis/flux.dev: Cannot connect to host"))
    with pytest.raises(KubeAccessError, match="cannot reach the Kubernetes API server: GET"):
        asyncio.run(read_run("ns", "r1", kube))
    kube.fail("get", RUNS, KubeError("etcdserver: request timed out", status=500))
    with pytest.raises(KubeError):  # the server's own failure: not a set-up problem
        asyncio.run(read_run("ns", "r1", kube))
