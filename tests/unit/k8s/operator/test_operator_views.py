"""The operator's views of runs and pods: what it holds between watch events and its own writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flux.k8s.kube import PODS, RUNS, WORKFLOWS, NotFound
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.cache import Cache


def run(version: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "r1", "resourceVersion": version},
        "status": {"phase": phase},
    }


def pod(version: str, phase: str = "Running", name: str = "r1-say-1") -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "resourceVersion": version,
            "labels": {"flux.dev/run": "r1"},
        },
        "status": {"phase": phase},
    }


def test_a_watch_event_older_than_our_own_write_is_not_held(kube: FakeKube) -> None:
    asyncio.run(_older_run_events(kube))


async def _older_run_events(kube: FakeKube) -> None:
    cache = Cache(kube)
    assert cache.run_seen(run("10", "Running"))  # our write's response
    # The watch still delivers the state before it: holding that would undo our write.
    assert not cache.run_seen(run("9", "Pending"))
    assert not cache.run_seen(run("10", "Running"))  # our own write, seen again: no pass
    assert cache.run_seen(run("11", "Succeeded"))
    held = await cache.run("ns", "r1")
    assert held["status"]["phase"] == "Succeeded"
    assert kube.requests == []  # a pass reads nothing the watches showed


def test_a_run_not_held_is_read_and_then_held(kube: FakeKube) -> None:
    kube.put(RUNS, run("1", "Running"))
    cache = Cache(kube)
    assert asyncio.run(cache.run("ns", "r1"))["status"]["phase"] == "Running"
    cache.stale("ns", "r1")  # a write found it stale
    assert asyncio.run(cache.run("ns", "r1"))["status"]["phase"] == "Running"
    assert kube.count("get", RUNS) == 2
    asyncio.run(cache.run("ns", "r1"))
    assert kube.count("get", RUNS) == 2
    with pytest.raises(NotFound):
        asyncio.run(cache.run("ns", "gone"))


def test_pods_are_held_from_creation_to_deletion(kube: FakeKube) -> None:
    asyncio.run(_pod_lifetime(kube))


async def _pod_lifetime(kube: FakeKube) -> None:
    cache = Cache(kube)
    cache.run_created("ns", "r1")
    assert not cache.pod_seen("ADDED", pod("5", "Pending"))  # a pass created it: nothing new
    assert cache.pod_seen("MODIFIED", pod("7", "Succeeded"))
    assert not cache.pod_seen("MODIFIED", pod("6", "Running"))  # late, older
    (held,) = await cache.pods_of("ns", "r1")
    assert held["status"]["phase"] == "Succeeded"
    cache.deleting("ns", "r1-say-1")
    assert await cache.pods_of("ns", "r1") == []  # on its way out
    assert not cache.pod_seen("MODIFIED", pod("8", "Succeeded"))
    assert not cache.pod_seen("DELETED", pod("9", "Succeeded"))  # we deleted it: no news
    assert kube.requests == []  # created while we watch: never listed
    # The deletion is over: a pod of that name again is news.
    assert cache.pod_seen("MODIFIED", pod("10", "Running"))


def test_a_pod_deleted_by_someone_else_is_news(kube: FakeKube) -> None:
    cache = Cache(kube)
    cache.run_created("ns", "r1")
    assert cache.pod_seen("MODIFIED", pod("3"))
    assert cache.pod_seen("DELETED", pod("4"))
    assert asyncio.run(cache.pods_of("ns", "r1")) == []


def test_a_failed_deletion_keeps_the_pod_and_a_missing_one_drops_it(kube: FakeKube) -> None:
    cache = Cache(kube)
    cache.run_created("ns", "r1")
    cache.pod_seen("MODIFIED", pod("3"))
    cache.deleting("ns", "r1-say-1")
    cache.not_deleted("ns", "r1-say-1", gone=False)
    assert [p["metadata"]["name"] for p in asyncio.run(cache.pods_of("ns", "r1"))] == ["r1-say-1"]
    cache.deleting("ns", "r1-say-1")
    cache.not_deleted("ns", "r1-say-1", gone=True)
    assert asyncio.run(cache.pods_of("ns", "r1")) == []


def test_a_run_s_pods_are_listed_once_after_a_start(kube: FakeKube) -> None:
    kube.put(PODS, pod("1", name="r1-a"))
    other = pod("1", name="r2-a")
    other["metadata"]["labels"] = {"flux.dev/run": "r2"}
    kube.put(PODS, other)
    cache = Cache(kube)
    first = asyncio.run(cache.pods_of("ns", "r1"))
    assert [p["metadata"]["name"] for p in first] == ["r1-a"]
    assert cache.pod_seen("MODIFIED", pod("9", "Succeeded", name="r1-b"))
    again = asyncio.run(cache.pods_of("ns", "r1"))
    assert [p["metadata"]["name"] for p in again] == ["r1-a", "r1-b"]
    assert kube.count("list", PODS) == 1
    cache.forget_run("ns", "r1")  # finished and cleared away; a later pass lists again
    asyncio.run(cache.pods_of("ns", "r1"))
    assert kube.count("list", PODS) == 2


def test_workflows_are_held_as_their_watch_shows_them(kube: FakeKube) -> None:
    wf = {"metadata": {"namespace": "ns", "name": "wf"}, "spec": {"entrypoint": "m:f"}}
    ref = {"metadata": {"namespace": "ns", "name": "r1"}, "spec": {"workflowRef": {"name": "wf"}}}
    cache = Cache(kube)
    assert asyncio.run(cache.workflow_of(ref)) is None  # not there
    kube.put(WORKFLOWS, dict(wf))
    assert asyncio.run(cache.workflow_of(ref))["spec"] == wf["spec"]  # type: ignore[index]
    assert kube.count("get", WORKFLOWS) == 2
    newer_meta = {"namespace": "ns", "name": "wf", "resourceVersion": "1000"}
    cache.workflow_seen({"metadata": newer_meta, "spec": {"entrypoint": "m:g"}})
    # An older event (our own write's response came first) changes nothing.
    cache.workflow_seen({"metadata": {**newer_meta, "resourceVersion": "999"}, "spec": {}})
    assert asyncio.run(cache.workflow_of(ref))["spec"] == {"entrypoint": "m:g"}  # type: ignore[index]
    assert kube.count("get", WORKFLOWS) == 2
    cache.forget_workflow("ns", "wf")
    asyncio.run(cache.workflow_of(ref))
    assert kube.count("get", WORKFLOWS) == 3
    assert asyncio.run(cache.workflow_of({**ref, "spec": {}})) is None
