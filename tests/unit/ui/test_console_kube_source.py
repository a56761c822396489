"""The console's Kubernetes source against an in-memory API server."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from flux.k8s import archive
from flux.k8s.kube import CONFIGMAPS, PODS, RUNS, KubeError, NotFound
from flux.k8s.kube.errors import BadRequest
from flux.k8s.kube.fake import FakeKube
from flux.ui.app import create_app
from flux.ui.kube_source import KubeSource
from flux.ui.pods import CALL_ID_ANNOTATION
from flux.ui.source import RunNotFound, RunQuery, RunUnreadable

STARTED = {
    "id": 1,
    "type": "WORKFLOW_STARTED",
    "sourceId": "r1",
    "name": "wf",
    "time": "2026-01-01T00:00:00+00:00",
}


def _run(namespace: str, name: str, phase: str, **status: object) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"workflowRef": {"name": "wf"}},
        "status": {"phase": phase, **status},
    }


def _pod(name: str, call_id: str, created: str) -> dict[str, object]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"flux.dev/run": "r1", "flux.dev/role": "task"},
            "annotations": {CALL_ID_ANNOTATION: call_id},
            "creationTimestamp": created,
        },
        "status": {"phase": "Running"},
    }


@pytest.fixture
def cluster() -> FakeKube:
    kube = FakeKube()
    archived = [
        STARTED,
        {**STARTED, "id": 2, "type": "TASK_STARTED", "sourceId": "say#0", "name": "say"},
    ]
    name = archive.chunk_name("r1", archive.HISTORY, 0)
    chunk = kube.put(
        CONFIGMAPS,
        archive.configmap(
            {"metadata": {"name": "r1", "namespace": "ns", "uid": "u"}},
            name,
            archive.HISTORY,
            archive.pack(archived),
        ),
    )
    inline = [{**STARTED, "id": 3, "type": "TASK_COMPLETED", "sourceId": "say#0", "name": "say"}]
    entry = archive.entry(chunk, 2)
    kube.put(RUNS, _run("ns", "r1", "Running", history=inline, historyArchive=[entry]))
    kube.put(RUNS, _run("ns", "r2", "Succeeded"))
    kube.put(RUNS, _run("other", "r3", "Failed"))
    return kube


def test_runs_are_listed_from_the_namespaces_it_is_given(cluster: FakeKube) -> None:
    everywhere = KubeSource([], cluster)
    assert {r.id for r in everywhere.list_runs(RunQuery()).runs} == {"ns.r1", "ns.r2", "other.r3"}
    assert cluster.count("list", RUNS) == 1  # every namespace in one request
    one = KubeSource(["ns"], cluster)
    page = one.list_runs(RunQuery(state="COMPLETED"))
    assert [r.id for r in page.runs] == ["ns.r2"] and page.total == 1
    assert one.workflow_names() == ["wf"]
    with pytest.raises(RunNotFound):
        one.get_run("other.r3")  # outside its namespaces


def test_a_run_reads_its_archived_history_back(cluster: FakeKube) -> None:
    source = KubeSource(["ns"], cluster)
    assert source.get_run("ns.r1").state == "RUNNING"
    assert [e.id for e in source.events("ns.r1", 0, 10)] == [1, 2, 3]
    assert source.event_count("ns.r1") == 3
    with pytest.raises(RunNotFound):
        source.get_run("ns.gone")


def test_a_run_whose_archive_is_lost_is_a_page_saying_so(cluster: FakeKube) -> None:
    del cluster.objects[("configmaps", "ns", archive.chunk_name("r1", archive.HISTORY, 0))]
    source = KubeSource(["ns"], cluster)
    with pytest.raises(RunUnreadable, match=r"part of run ns/r1 is lost: .* is gone"):
        source.get_run("ns.r1")
    page = TestClient(create_app(source)).get("/runs/ns.r1")
    assert page.status_code == 410
    assert "part of run ns/r1 is lost" in page.text


def test_a_call_log_is_the_newest_pod_of_the_call(cluster: FakeKube) -> None:
    cluster.put(PODS, _pod("p1", "say#0", "2026-01-01T00:00:01Z"))
    cluster.put(PODS, _pod("p2", "say#0", "2026-01-01T00:00:05Z"))
    cluster.logs[("ns", "p1")] = "first attempt\n"
    cluster.logs[("ns", "p2")] = "second attempt\n"
    source = KubeSource(["ns"], cluster)
    assert source.call_logs("ns.r1", "say#0") == "second attempt\n"
    assert source.call_logs("ns.r1", "other#0") is None
    assert [s.pod for s in source.pod_stages("ns.r1")["say#0"]] == ["p1", "p2"]


def test_a_log_not_there_yet_or_any_more_is_none_and_other_errors_are_raised(
    cluster: FakeKube,
) -> None:
    cluster.put(PODS, _pod("p1", "say#0", "2026-01-01T00:00:01Z"))
    source = KubeSource(["ns"], cluster)
    cluster.fail("get", "pods/log", BadRequest('container "main" is waiting to start'))
    assert source.call_logs("ns.r1", "say#0") is None
    cluster.fail("get", "pods/log", NotFound('pods "p1" not found'))
    assert source.call_logs("ns.r1", "say#0") is None
    cluster.fail("get", "pods/log", KubeError("etcdserver: request timed out", status=500))
    with pytest.raises(KubeError):
        source.call_logs("ns.r1", "say#0")
