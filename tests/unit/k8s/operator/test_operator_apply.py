"""Carrying out a plan: pods, ConfigMaps, the status patch and Events (on FakeKube)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from flux.k8s import archive, metrics
from flux.k8s.config import OperatorConfig
from flux.k8s.kube import CONFIGMAPS, EVENTS, PODS, RUNS, Forbidden, PatchTestFailed
from flux.k8s.kube.connection import Connection, tls_context
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.fake import FakeKube
from flux.k8s.kube.http import KubeClient
from flux.k8s.kube.objects import create_or_replace
from flux.k8s.operator.api_metrics import count_request
from flux.k8s.operator.events import COMPONENT, BackgroundEvents
from flux.k8s.operator.reconciler import Reconciler
from flux.k8s.reconcile import Plan
from support.apiserver import serve, status_body


def run(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "r1", "namespace": "ns", "uid": "run-uid"},
        "spec": {"workflowRef": {"name": "wf"}},
        "status": status,
    }


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"flux.dev/run": "r1"}}}


def seeded(kube: FakeKube, reconciler: Reconciler, **status: Any) -> dict[str, Any]:
    """The run stored and seen, as after its watch event."""
    held = kube.put(RUNS, run(**status))
    reconciler.cache.run_created("ns", "r1")
    reconciler.cache.run_seen(held)
    return held


def test_pods_status_and_deletions_are_written_and_held(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        kube.put(PODS, pod("r1-old"))
        reconciler.cache.pod_seen("MODIFIED", kube.stored(PODS, "ns", "r1-old") or {})
        plan = Plan(
            status={"phase": "Running", "tasks": [{"callId": "a#0", "state": "Running"}]},
            create=[pod("r1-a"), pod("r1-b")],
            delete=["r1-old", "r1-old"],
        )
        await reconciler.applier.apply(held, plan)
        # Gone from the run's pods at once; deleted after the pass.
        held_pods = await reconciler.cache.pods_of("ns", "r1")
        assert sorted(p["metadata"]["name"] for p in held_pods) == ["r1-a", "r1-b"]
        await reconciler.applier.clearing.drain()
        assert sorted(p["metadata"]["name"] for p in kube.all(PODS)) == ["r1-a", "r1-b"]
        stored = kube.stored(RUNS, "ns", "r1")
        assert stored is not None and stored["status"]["tasks"] == plan.status["tasks"]
        # Held as written: the next pass reads nothing.
        assert await reconciler.cache.run("ns", "r1") == stored
        held_pods = await reconciler.cache.pods_of("ns", "r1")
        assert sorted(p["metadata"]["name"] for p in held_pods) == ["r1-a", "r1-b"]
        assert kube.count("get") == 0 and kube.count("list") == 0
        assert kube.count("delete", PODS) == 1  # each pod once

    asyncio.run(scenario())


def test_a_pod_already_there_or_already_gone_is_no_error(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        kube.put(PODS, pod("r1-a"))  # created by a pass whose status write then failed
        await reconciler.applier.apply(held, Plan(create=[pod("r1-a")], delete=["r1-gone"]))
        await reconciler.applier.clearing.drain()
        assert await reconciler.cache.pods_of("ns", "r1") == []

    asyncio.run(scenario())


def test_a_failed_deletion_is_logged_and_the_pod_kept_for_the_next_pass(
    kube: FakeKube, reconciler: Reconciler, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        kube.put(PODS, pod("r1-a"))
        reconciler.cache.pod_seen("MODIFIED", kube.stored(PODS, "ns", "r1-a") or {})
        kube.fail("delete", PODS, Forbidden("not allowed"))
        await reconciler.applier.apply(held, Plan(delete=["r1-a"]))
        await reconciler.applier.clearing.drain()
        assert [p["metadata"]["name"] for p in await reconciler.cache.pods_of("ns", "r1")] == [
            "r1-a"
        ]
        assert "task pod ns/r1-a not deleted" in caplog.text

    asyncio.run(scenario())


def test_the_next_step_does_not_wait_for_finished_pods_to_be_cleared(
    kube: FakeKube, reconciler: Reconciler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The status write settles the step; the log read and the deletion that
    follow must not hold up the pass that creates the next pod."""

    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        kube.put(PODS, pod("r1-old"))
        reconciler.cache.pod_seen("MODIFIED", kube.stored(PODS, "ns", "r1-old") or {})
        release = asyncio.Event()
        delete = kube.delete

        async def slow_delete(*args: Any, **kwargs: Any) -> None:
            await release.wait()
            await delete(*args, **kwargs)

        monkeypatch.setattr(kube, "delete", slow_delete)
        settled = Plan(status={"tasks": [{"callId": "a#0", "state": "Completed"}]})
        settled.delete.append("r1-old")
        await asyncio.wait_for(reconciler.applier.apply(held, settled, [pod("r1-old")]), 1)
        held = await reconciler.cache.run("ns", "r1")
        await asyncio.wait_for(reconciler.applier.apply(held, Plan(create=[pod("r1-b")])), 1)
        assert [p["metadata"]["name"] for p in await reconciler.cache.pods_of("ns", "r1")] == [
            "r1-b"
        ]
        assert kube.stored(PODS, "ns", "r1-old") is not None  # still being cleared
        release.set()
        await reconciler.applier.clearing.drain()
        assert kube.stored(PODS, "ns", "r1-old") is None

    asyncio.run(scenario())


def test_a_stale_status_write_fails_whole(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        kube.put(RUNS, run(phase="Succeeded"))  # the driver finished it meanwhile
        with pytest.raises(PatchTestFailed):
            await reconciler.applier.apply(held, Plan(status={"phase": "Failed"}))
        assert (kube.stored(RUNS, "ns", "r1") or {})["status"] == {"phase": "Succeeded"}

    asyncio.run(scenario())


def test_large_outputs_and_settled_records_move_to_configmaps(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        big = "x" * (archive.INLINE_VALUE_BYTES + 1)
        settled = [{"callId": f"s#{i}", "state": "Completed"} for i in range(3)]
        plan = Plan(
            status={"tasks": [{"callId": "a#0", "state": "Completed", "output": big}]},
            archive_tasks=settled,
        )
        await reconciler.applier.apply(held, plan)
        (record,) = (kube.stored(RUNS, "ns", "r1") or {})["status"]["tasks"]
        assert "output" not in record
        value = kube.stored(CONFIGMAPS, "ns", record["outputRef"]["configMap"])
        assert value is not None and archive.read_payload(value) == big
        (entry,) = (kube.stored(RUNS, "ns", "r1") or {})["status"]["taskArchive"]
        chunk = kube.stored(CONFIGMAPS, "ns", entry["configMap"])
        assert chunk is not None and archive.read_payload(chunk) == settled
        assert entry["count"] == 3
        assert entry["resourceVersion"] == chunk["metadata"]["resourceVersion"]

    asyncio.run(scenario())


def test_a_configmap_of_a_retried_write_is_replaced(kube: FakeKube) -> None:
    manifest = {"metadata": {"name": "cm", "namespace": "ns"}, "data": {"k": "1"}}
    asyncio.run(create_or_replace(kube, CONFIGMAPS, manifest))
    second = asyncio.run(create_or_replace(kube, CONFIGMAPS, {**manifest, "data": {"k": "2"}}))
    assert second["data"] == {"k": "2"}
    assert (kube.count("create", CONFIGMAPS), kube.count("update", CONFIGMAPS)) == (2, 1)


def test_events_are_posted_without_holding_up_the_pass(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        plan = Plan(events=[("Normal", "Succeeded", "done"), ("Warning", "Slow", "late")])
        await reconciler.applier.apply(held, plan)
        assert kube.all(EVENTS) == []  # the pass is over; the Events are still on their way
        await reconciler.events.drain()
        events = sorted(kube.all(EVENTS, "ns"), key=lambda e: e["reason"])
        assert [(e["type"], e["reason"], e["message"]) for e in events] == [
            ("Warning", "Slow", "late"),
            ("Normal", "Succeeded", "done"),
        ]
        about = events[0]["involvedObject"]
        assert (about["kind"], about["name"], about["uid"]) == ("WorkflowRun", "r1", "run-uid")
        assert events[0]["source"] == {"component": COMPONENT}

    asyncio.run(scenario())


def test_a_refused_event_is_logged_not_raised(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        held = seeded(kube, reconciler, phase="Running")
        kube.fail("create", EVENTS, Forbidden("no events"))
        await reconciler.applier.apply(held, Plan(events=[("Normal", "Succeeded", "done")]))
        await reconciler.events.drain()
        assert kube.all(EVENTS) == []

    asyncio.run(scenario())


async def _quota_refuses(request: web.Request) -> web.StreamResponse:
    """An API server refusing every request, as a full quota does."""
    return web.json_response(status_body(403, "Forbidden", "exceeded quota"), status=403)


def test_a_refused_pod_creation_is_raised_and_counted_as_an_api_error(
    operator_config: OperatorConfig,
) -> None:
    async def scenario() -> None:
        async with serve(_quota_refuses) as server:
            kube = KubeClient(Connection(server.url, tls_context()), observe=count_request)
            events = BackgroundEvents(EventRecorder(FakeKube(), COMPONENT))
            reconciler = Reconciler(kube, operator_config, events)
            errors = metrics.API_ERRORS.labels("create", "pods", "403")
            requests = metrics.API_REQUESTS.labels("create", "pods")
            before = errors._value.get(), requests._value.get()
            with pytest.raises(Forbidden):
                await reconciler.applier.apply(run(), Plan(create=[pod("r1-a")]))
            await kube.close()
        # The quota alert and panel see it.
        assert (errors._value.get(), requests._value.get()) == (before[0] + 1, before[1] + 1)

    asyncio.run(scenario())


def test_requests_answered_or_unreachable_are_not_errors() -> None:
    errors = metrics.API_ERRORS.labels("get", "workflowruns", "404")
    requests = metrics.API_REQUESTS.labels("get", "workflowruns")
    before = errors._value.get(), requests._value.get()
    for status in (200, 201, 0, 404):
        count_request("get", "workflowruns", status)
    assert (errors._value.get(), requests._value.get()) == (before[0] + 1, before[1] + 4)


def test_events_still_on_their_way_hold_up_a_shutdown_only_so_long() -> None:
    class Silent:
        """An API server that never answers an Event."""

        async def create(self, *_: Any) -> dict[str, Any]:
            await asyncio.sleep(60)
            return {}

    async def scenario() -> None:
        events = BackgroundEvents(EventRecorder(Silent(), COMPONENT))  # type: ignore[arg-type]
        events.post(run(), "Normal", "Succeeded", "done")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await events.drain(timeout=0.05)
        assert loop.time() - started < 1

    asyncio.run(scenario())
