"""The operator's bound on per-run driver pods (FLUX_MAX_DRIVER_PODS), on the
in-memory API server and in the counting alone."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from test_operator_reconciler import created

from flux.k8s import metrics
from flux.k8s.config import OperatorConfig
from flux.k8s.kube import PODS, RUNS
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.cache import Key
from flux.k8s.operator.driver_slots import DriverSlots
from flux.k8s.reconcile import Plan
from support.k8s_bodies import pod


@pytest.fixture
def operator_config() -> OperatorConfig:
    return OperatorConfig(default_image="flux-runtime:test", max_driver_pods=1)


def _driver_plan(name: str) -> Plan:
    return Plan(create=[{"metadata": {"name": name, "labels": {"flux.dev/role": "driver"}}}])


def _queued_plan() -> Plan:
    return Plan(status={"driver": {"starts": 0, "queued": True}})


def _driver(name: str, phase: str, run: str = "r1") -> dict[str, Any]:
    body = pod(name, "driver", phase)
    body["metadata"].update(namespace="ns", labels={"flux.dev/role": "driver", "flux.dev/run": run})
    return body


def test_runs_beyond_the_bound_wait_in_turn_and_are_woken_as_drivers_finish() -> None:
    woken: list[Key] = []
    slots = DriverSlots(2, woken.append)
    a, b, c, d = (("ns", n) for n in "abcd")
    for run, name in ((a, "a-d1"), (b, "b-d1")):
        assert slots.slots_for(run, {}) >= 1
        slots.planned(run, {}, _driver_plan(name))
    for run in (c, d):
        assert slots.slots_for(run, {}) == 0
        slots.planned(run, {}, _queued_plan())
    assert (slots.running, slots.waiting) == (2, 2)
    slots.pod_seen("MODIFIED", _driver("a-d1", "Succeeded", "a"))
    assert woken == [c]
    # d is behind c: the free slot is c's until c takes it.
    assert slots.slots_for(d, {}) == 0 and slots.slots_for(c, {}) == 1
    slots.planned(c, {}, _driver_plan("c-d1"))
    assert (slots.running, slots.waiting) == (2, 1)


def test_a_run_in_progress_goes_ahead_of_new_runs() -> None:
    slots = DriverSlots(1, lambda key: None)
    slots.planned(("ns", "a"), {}, _driver_plan("a-d1"))
    slots.planned(("ns", "new"), {}, _queued_plan())
    in_progress = {"driver": {"starts": 1}}
    slots.planned(("ns", "old"), in_progress, _queued_plan())
    slots.pod_seen("DELETED", _driver("a-d1", "Running", "a"))
    assert slots.slots_for(("ns", "old"), in_progress) == 1
    assert slots.slots_for(("ns", "new"), {}) == 0


def test_driver_pods_listed_at_start_count_and_a_gone_run_releases_its_own() -> None:
    slots = DriverSlots(1, lambda key: None)
    slots.pod_seen("None", _driver("r1-d1", "Running"))
    slots.pod_seen("None", _driver("r2-d1", "Succeeded", "r2"))  # exited: counts no longer
    slots.pod_seen(
        "None",
        {
            **pod("t", "task", "Running"),
            "metadata": {
                "name": "t",
                "namespace": "ns",
                "labels": {"flux.dev/role": "task", "flux.dev/run": "r1"},
            },
        },
    )
    assert slots.running == 1 and slots.slots_for(("ns", "r3"), {}) == 0
    slots.forget_run(("ns", "r1"))
    assert slots.running == 0


def test_a_finished_run_stops_waiting_but_its_driver_counts_until_it_exits() -> None:
    slots = DriverSlots(1, lambda key: None)
    slots.planned(("ns", "a"), {}, _driver_plan("a-d1"))
    slots.planned(("ns", "b"), {}, _queued_plan())
    slots.finished(("ns", "b"))
    slots.finished(("ns", "a"))
    assert (slots.running, slots.waiting) == (1, 0)


def test_the_operator_queues_the_second_run_and_starts_it_when_the_first_driver_exits(
    kube: FakeKube, reconciler: Any
) -> None:
    async def scenario() -> None:
        await reconciler.run_event("ADDED", created(kube, "r1"))
        await reconciler.run_event("ADDED", created(kube, "r2"))
        (first,) = kube.all(PODS, "ns")
        assert first["metadata"]["labels"]["flux.dev/run"] == "r1"
        waiting = (kube.stored(RUNS, "ns", "r2") or {})["status"]
        assert waiting["phase"] == "Pending" and waiting["driver"]["queued"] is True
        assert waiting["conditions"][0]["reason"] == "DriverQueued"
        # r1's driver records the end of its workflow, then exits.
        r1 = kube.stored(RUNS, "ns", "r1") or {}
        ended = {
            **(r1.get("status") or {}),
            "phase": "Succeeded",
            "finishTime": "2026-01-01T00:00:00+00:00",
        }
        await reconciler.run_event("MODIFIED", kube.put(RUNS, {**r1, "status": ended}))
        done = {
            **first,
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [{"state": {"terminated": {"exitCode": 0}}}],
            },
        }
        done["metadata"] = {**first["metadata"], "resourceVersion": "999999"}
        await reconciler.pod_event("MODIFIED", done, "r1")
        await reconciler._woken.drain()
        drivers = {p["metadata"]["labels"]["flux.dev/run"] for p in kube.all(PODS, "ns")}
        assert "r2" in drivers
        started = (kube.stored(RUNS, "ns", "r2") or {})["status"]
        assert "queued" not in started["driver"] and started["driver"]["starts"] == 1
        assert started["conditions"][0]["reason"] == "Pending"

    asyncio.run(scenario())


def test_the_bound_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="FLUX_MAX_DRIVER_PODS"):
        dataclasses.replace(OperatorConfig(), max_driver_pods=0)


def test_the_bound_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_MAX_DRIVER_PODS", "7")
    assert OperatorConfig.from_env().max_driver_pods == 7
    monkeypatch.setenv("FLUX_MAX_DRIVER_PODS", "many")
    with pytest.raises(ValueError, match="FLUX_MAX_DRIVER_PODS must be a whole number"):
        OperatorConfig.from_env()


def test_passes_of_runs_created_together_never_start_more_drivers_than_the_bound(
    kube: FakeKube, reconciler: Any
) -> None:
    async def scenario() -> None:
        bodies = [created(kube, f"r{i}") for i in range(5)]
        # Their passes interleave at every await (the API calls).
        await asyncio.gather(*(reconciler.run_event("ADDED", body) for body in bodies))
        assert len(kube.all(PODS, "ns")) == 1
        queued = [
            name
            for name in (f"r{i}" for i in range(5))
            if ((kube.stored(RUNS, "ns", name) or {})["status"].get("driver") or {}).get("queued")
        ]
        assert len(queued) == 4
        assert metrics.RUNS_WAITING_FOR_DRIVER.collect()[0].samples[0].value == 4
        assert metrics.DRIVER_PODS.collect()[0].samples[0].value == 1

    asyncio.run(scenario())
