"""One pass of a run, from watch event to writes, on the in-memory API server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from flux.k8s import archive
from flux.k8s.kube import CONFIGMAPS, EVENTS, PODS, RUNS, WORKFLOWS, Conflict, Unreachable
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.reconciler import Reconciler, result_logs
from flux.k8s.protocol import RESULT_LOG_MARKER


def workflow() -> dict[str, Any]:
    return {
        "metadata": {"name": "wf", "namespace": "ns", "generation": 1},
        "spec": {"entrypoint": "examples.hello:hello"},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "message": "ok", "observedGeneration": 1}
            ]
        },
    }


def run(name: str = "r1", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {"workflowRef": {"name": "wf"}, "input": "World"},
    }
    if status:
        body["status"] = status
    return body


def created(kube: FakeKube, name: str = "r1") -> dict[str, Any]:
    """A run as a user's ``kubectl apply`` leaves it, and the Workflow it names."""
    if kube.stored(WORKFLOWS, "ns", "wf") is None:
        kube.put(WORKFLOWS, workflow())
    return kube.put(RUNS, run(name))


def test_a_new_run_gets_its_driver_pod_and_is_pending(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        await reconciler.run_event("ADDED", created(kube))
        (driver,) = kube.all(PODS, "ns")
        assert driver["metadata"]["labels"]["flux.dev/role"] == "driver"
        assert (kube.stored(RUNS, "ns", "r1") or {})["status"]["phase"] == "Pending"
        # The run came with the event; its pods are all ours; the Workflow is read once.
        assert kube.count("get", RUNS) == 0 and kube.count("list", PODS) == 0
        assert kube.count("get", WORKFLOWS) == 1
        await reconciler.run_event("ADDED", created(kube, "r2"))
        assert kube.count("get", WORKFLOWS) == 1

    asyncio.run(scenario())


def test_our_own_write_seen_again_makes_no_pass(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        await reconciler.run_event("ADDED", created(kube))
        writes = len(kube.requests)
        await reconciler.run_event("MODIFIED", kube.stored(RUNS, "ns", "r1") or {})
        assert len(kube.requests) == writes

    asyncio.run(scenario())


def test_a_run_listed_after_a_restart_has_its_pods_listed(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        await reconciler.run_event(None, created(kube))  # listed at start: no type
        assert kube.count("list", PODS) == 1
        assert len(kube.all(PODS, "ns")) == 1

    asyncio.run(scenario())


def test_a_stale_view_is_read_again_and_the_pass_retried(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        seen = created(kube)
        # A shared driver claimed the run after the watch showed it without status.
        kube.put(RUNS, {**seen, "status": {"phase": "Pending", "driver": {"shared": True}}})
        reconciler.cache.run_created("ns", "r1")
        await reconciler.run_event("MODIFIED", seen)
        await reconciler.applier.clearing.drain()
        assert kube.count("get", RUNS) == 1  # read fresh once
        status = (kube.stored(RUNS, "ns", "r1") or {})["status"]
        assert status["driver"]["shared"] is True  # the claim was not overwritten

    asyncio.run(scenario())


def test_a_run_changed_under_every_write_fails_the_pass_after_one_retry(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        kube.fail("patch", "workflowruns/status", Conflict("modified"), times=2)
        try:
            await reconciler.run_event("ADDED", created(kube))
        except Conflict:
            pass
        else:
            raise AssertionError("a second stale view in a row is raised")
        assert kube.count("patch", "workflowruns/status") == 2

    asyncio.run(scenario())


def test_a_deleted_run_is_forgotten(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        body = created(kube)
        await reconciler.run_event("ADDED", body)
        await kube.delete(RUNS, "ns", "r1")
        await reconciler.run_event("DELETED", body)
        reads = kube.count("get", RUNS)
        await reconciler.reconcile("ns", "r1")  # e.g. a timer set before: nothing held, read
        assert kube.count("get", RUNS) == reads + 1
        assert kube.count("patch", "workflowruns/status") == 1

    asyncio.run(scenario())


def test_a_run_being_deleted_is_left_alone(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        body = created(kube)
        body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        await reconciler.run_event("ADDED", body)
        assert kube.all(PODS) == [] and kube.count("patch", "workflowruns/status") == 0

    asyncio.run(scenario())


def test_a_pod_event_with_news_makes_a_pass(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        await reconciler.run_event("ADDED", created(kube))
        (driver,) = kube.all(PODS, "ns")
        patches = kube.count("patch", "workflowruns/status")
        await reconciler.pod_event("ADDED", driver, "r1")  # the pass that created it holds it
        assert kube.count("patch", "workflowruns/status") == patches
        driver["metadata"]["resourceVersion"] = "999"
        terminated = {"terminated": {"exitCode": 1, "reason": "Error"}}
        driver["status"] = {"phase": "Failed", "containerStatuses": [{"state": terminated}]}
        await reconciler.pod_event("MODIFIED", driver, "r1")
        await reconciler.applier.clearing.drain()
        status = (kube.stored(RUNS, "ns", "r1") or {})["status"]
        assert status["driver"]["failures"] == 1  # the pass saw the driver fail
        assert kube.all(PODS, "ns") == []  # and cleared it away
        await reconciler.pod_event("DELETED", driver, "r1")  # our own deletion: no news
        assert kube.count("patch", "workflowruns/status") == patches + 1

    asyncio.run(scenario())


def test_large_results_are_read_from_the_log_s_last_line(kube: FakeKube) -> None:
    def pod(name: str, message: str) -> dict[str, Any]:
        terminated = {"exitCode": 0, "message": message}
        return {
            "metadata": {"name": name, "namespace": "ns"},
            "status": {"containerStatuses": [{"state": {"terminated": terminated}}]},
        }

    kube.put(PODS, pod("big", '{"inLog":true}'))
    kube.logs[("ns", "big")] = f'working\n{RESULT_LOG_MARKER}{{"ok":1}}\nbye\n'
    pods = [pod("big", '{"inLog":true}'), pod("small", '{"ok":2}')]
    assert asyncio.run(result_logs(kube, "ns", pods)) == {"big": '{"ok":1}'}
    assert kube.count("get", "pods/log") == 1


def test_archived_history_is_read_once_through_the_seam(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        body = _archived(kube, [])
        reconciler.cache.run_created("ns", "r1")
        await reconciler.run_event("MODIFIED", body)
        await reconciler.reconcile("ns", "r1")
        assert kube.count("get", CONFIGMAPS) == 1

    asyncio.run(scenario())


def _archived(kube: FakeKube, events: list[Any]) -> dict[str, Any]:
    """Run r1, Running, its history archived in one chunk of ``events``; its driver up."""
    body = created(kube)
    chunk = kube.put(
        CONFIGMAPS,
        archive.configmap(
            {**body, "metadata": {**body["metadata"], "uid": "run-uid"}},
            archive.chunk_name("r1", archive.HISTORY, 0),
            archive.HISTORY,
            archive.pack(events),
        ),
    )
    status = {"phase": "Running", "historyArchive": [archive.entry(chunk, len(events))]}
    kube.put(PODS, {"metadata": {"name": "r1-driver-1", "namespace": "ns", "labels": DRIVER}})
    return kube.put(RUNS, {**body, "status": status})


DRIVER = {"flux.dev/run": "r1", "flux.dev/role": "driver"}
STARTED = {
    "type": "WORKFLOW_STARTED",
    "sourceId": "r1",
    "name": "hello",
    "time": "2026-01-01T00:00:00Z",
    "value": "World",
}
CHUNK = archive.chunk_name("r1", archive.HISTORY, 0)


def _gone(kube: FakeKube) -> None:
    del kube.objects[("configmaps", "ns", CHUNK)]


def _garbled(kube: FakeKube) -> None:
    kube.objects[("configmaps", "ns", CHUNK)]["binaryData"][archive.PAYLOAD_KEY] = "bm90IGd6aXA="


def _rewritten(kube: FakeKube) -> None:
    kube.put(CONFIGMAPS, kube.stored(CONFIGMAPS, "ns", CHUNK) or {})  # a new resourceVersion


@pytest.mark.parametrize(
    ("events", "damage", "said"),
    [
        ([STARTED], _gone, "is gone"),
        ([STARTED], _garbled, "is unreadable"),
        ([STARTED], _rewritten, "changed after it was archived"),
        ([{k: v for k, v in STARTED.items() if k != "sourceId"}], None, "not a history event"),
        ([{**STARTED, "type": "TASK_STARTED", "value": 7}], None, "without its value"),
        (["not an event"], None, "not a history event"),
    ],
)
def test_a_run_whose_archived_history_is_lost_fails_with_a_reason_and_an_event(
    kube: FakeKube,
    reconciler: Reconciler,
    events: list[Any],
    damage: Callable[[FakeKube], None] | None,
    said: str,
) -> None:
    """Not a pass that raises on every try while the run stays Running: a
    ConfigMap deleted by hand, or written by a workflow's own code in its
    driver, is history no pass can read again."""

    async def scenario() -> None:
        body = _archived(kube, events)
        if damage is not None:
            damage(kube)
        reconciler.cache.run_created("ns", "r1")
        await reconciler.run_event("MODIFIED", body)
        await reconciler.reconcile("ns", "r1")
        await reconciler.events.drain()

    asyncio.run(scenario())
    status = (kube.stored(RUNS, "ns", "r1") or {})["status"]
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "HistoryLost"
    assert status["error"]["kind"] == "infrastructure"
    assert CHUNK in status["error"]["message"] and said in status["error"]["message"]
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "HistoryLost")
    assert [(e["type"], e["reason"]) for e in kube.all(EVENTS, "ns")] == [
        ("Warning", "HistoryLost")
    ]
    assert kube.stored(PODS, "ns", "r1-driver-1") is None


def test_an_archived_chunk_out_of_reach_for_now_fails_no_run(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        body = _archived(kube, [STARTED])
        kube.fail("get", CONFIGMAPS, Unreachable("connection reset"))
        reconciler.cache.run_created("ns", "r1")
        with pytest.raises(Unreachable):
            await reconciler.run_event("MODIFIED", body)
        assert (kube.stored(RUNS, "ns", "r1") or {})["status"]["phase"] == "Running"
        await reconciler.reconcile("ns", "r1")  # the next pass reads it
        assert (kube.stored(RUNS, "ns", "r1") or {})["status"]["phase"] == "Running"

    asyncio.run(scenario())


def test_the_active_runs_gauge_follows_phase_moves_and_forgotten_runs(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    """The per-phase counts are kept as phases move (not recounted over every
    run at each move): they must still match the runs, moved and forgotten."""

    def active(phase: str) -> float | None:
        return REGISTRY.get_sample_value("flux_runs_active", {"phase": phase})

    async def scenario() -> None:
        for name in ("r1", "r2", "r3"):
            await reconciler.run_event("ADDED", created(kube, name))
        assert (active("Pending"), active("Running")) == (3, 0)
        moved = kube.stored(RUNS, "ns", "r2") or {}
        moved["status"]["phase"] = "Running"
        moved = kube.put(RUNS, moved)
        await reconciler.run_event("MODIFIED", moved)
        assert (active("Pending"), active("Running")) == (2, 1)
        reconciler.forget("ns", "r2")
        reconciler.forget("ns", "r1")
        reconciler.forget("ns", "r1")  # a second DELETED event: counted once
        assert (active("Pending"), active("Running"), active("Paused")) == (1, 0, 0)

    asyncio.run(scenario())
