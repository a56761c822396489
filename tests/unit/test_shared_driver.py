"""Shared driver mode: the operator's choice of driver, and one driver for many runs."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from test_driver import FakeRuns, complete_outstanding, new_run, pipeline_wf
from test_k8s_reconcile import CONFIG, NOW, WF_STARTED, plan, run, started, workflow

from flux.k8s.reconcile import Observed, plan_run
from flux.runtime.shared_driver import SharedDriver, serves


def shared_workflow() -> dict[str, Any]:
    return workflow(entrypoint="examples.hello:hello", driverMode="Shared")


def test_a_new_run_of_a_shared_workflow_uses_the_shared_driver_pod() -> None:
    result = plan({}, wf=shared_workflow())
    assert result.status["driver"] == {"shared": True}
    assert result.shared_driver is not None
    assert result.shared_driver["metadata"]["labels"]["flux.dev/role"] == "shared-driver"
    assert result.shared_driver["metadata"]["ownerReferences"][0]["kind"] == "Workflow"
    env = {e["name"]: e["value"] for e in result.shared_driver["spec"]["containers"][0]["env"]}
    assert env["FLUX_WORKFLOW_NAME"] == "wf" and "FLUX_RUN" not in env
    assert not [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "driver"]


def test_a_new_run_is_left_to_a_shared_driver_that_is_up() -> None:
    observed = Observed(run(), shared_workflow(), [], NOW, shared_driver_up=True)
    result = plan_run(observed, CONFIG)
    # The driver's first write claims it, with phase and conditions: nothing to write here.
    assert result.status == {} and result.events == [] and result.create == []
    assert result.shared_driver is not None  # still made sure of


def test_a_shared_run_removes_a_per_run_driver_whose_claim_lost() -> None:
    stray = {"metadata": {"name": "r1-driver-1", "labels": {"flux.dev/role": "driver"}}}
    result = plan({"phase": "Pending", "driver": {"shared": True}}, [stray], shared_workflow())
    assert result.delete == ["r1-driver-1"]


def test_a_shared_run_waiting_for_its_tasks_needs_no_driver() -> None:
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0")],
        "driver": {"shared": True},
        "tasks": [{"callId": "say#0", "name": "say", "state": "Running", "pod": "p"}],
    }
    assert plan(status, wf=shared_workflow()).shared_driver is None


def test_a_run_keeps_the_driver_mode_it_started_with() -> None:
    status = {"phase": "Running", "history": [], "driver": {"starts": 1, "failures": 0}}
    result = plan(status, wf=shared_workflow())
    assert result.shared_driver is None
    assert "shared" not in result.status.get("driver", {})


def _shared(body: dict[str, Any], name: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["name"] = name
    body["status"] = {"driver": {"shared": True}}
    return body


class ManyRuns:
    """FakeRuns for several runs, by name."""

    def __init__(self, bodies: dict[str, dict[str, Any]]):
        self.by_name = {name: FakeRuns(body) for name, body in bodies.items()}

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.by_name[name].get(namespace, name)

    async def patch_status(self, namespace: str, name: str, ops: Any) -> dict[str, Any]:
        return await self.by_name[name].patch_status(namespace, name, ops)


def test_one_shared_driver_advances_several_runs_to_their_end() -> None:
    bodies = {n: _shared(new_run(i + 1), n) for i, n in enumerate(["a", "b"])}
    runs = ManyRuns(bodies)
    driver = SharedDriver(runs, None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        for name in bodies:
            await driver.consider("ADDED", copy.deepcopy(runs.by_name[name].body))
        for _ in range(2):
            for name, fake in runs.by_name.items():
                stale = copy.deepcopy(fake.body)
                stale["metadata"]["resourceVersion"] = "0"
                await driver.consider("MODIFIED", stale)  # older than its own write
                assert driver.held[name].awaiting == fake.body["metadata"]["resourceVersion"]
                assert complete_outstanding(fake)
                fake.patches += 1
                fake.body["metadata"]["resourceVersion"] = str(fake.patches)
                await driver.consider("MODIFIED", copy.deepcopy(fake.body))
        for name, fake in runs.by_name.items():
            assert fake.body["status"]["phase"] == "Paused", name
            assert not serves(fake.body)
            fake.body["status"]["resume"] = {"input": f"ok-{name}"}
            fake.patches += 1
            fake.body["metadata"]["resourceVersion"] = str(fake.patches)
            assert serves(fake.body)
            await driver.consider("MODIFIED", copy.deepcopy(fake.body))

    asyncio.run(scenario())
    for name, fake in runs.by_name.items():
        status = fake.body["status"]
        assert status["phase"] == "Succeeded"
        assert status["output"]["decision"] == f"ok-{name}"
    assert driver.held == {}  # finished runs are let go
    assert runs.by_name["a"].body["status"]["output"]["b"] == 4
    assert runs.by_name["b"].body["status"]["output"]["b"] == 8


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    async def post(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.posted.append((obj["metadata"]["name"], kind, reason))


def _new(name: str, input: int) -> dict[str, Any]:
    body = new_run(input)
    body["metadata"]["name"] = name
    return body


def test_the_shared_driver_claims_new_runs_and_announces_their_outcome() -> None:
    runs = ManyRuns({n: _new(n, i + 1) for i, n in enumerate(["a", "b", "c"])})
    events = FakeEvents()
    driver = SharedDriver(runs, None, "ns", "wf", pipeline_wf, events=events)  # type: ignore[arg-type]

    async def scenario() -> None:
        for fake in runs.by_name.values():
            driver.offer("ADDED", copy.deepcopy(fake.body))
        await driver.drain()
        for fake in runs.by_name.values():
            status = fake.body["status"]
            assert status["driver"] == {"shared": True}
            assert status["phase"] == "Running"
            assert [c["reason"] for c in status["conditions"]] == ["Running"]
        assert events.posted == []  # running is routine: no Event
        for _ in range(2):
            for fake in runs.by_name.values():
                complete_outstanding(fake)
                fake.patches += 1
                fake.body["metadata"]["resourceVersion"] = str(fake.patches)
                driver.offer("MODIFIED", copy.deepcopy(fake.body))
            await driver.drain()

    asyncio.run(scenario())
    for name, fake in runs.by_name.items():
        assert fake.body["status"]["phase"] == "Paused"
        assert fake.body["status"]["conditions"][0]["reason"] == "Paused"
        assert (name, "Normal", "Paused") in events.posted
    assert len(events.posted) == 3


def test_a_claim_loses_to_the_operator_and_leaves_its_write_alone() -> None:
    fake = FakeRuns(_new("a", 1))
    seen = copy.deepcopy(fake.body)  # before the operator's first write
    fake.body["status"] = {"phase": "Pending", "driver": {"starts": 1, "pod": "a-driver-1"}}
    driver = SharedDriver(ManyRuns({}), None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]
    driver.runs.by_name["a"] = fake  # type: ignore[attr-defined]
    driver.retry_delay = 0

    async def scenario() -> None:
        driver.offer("ADDED", seen)
        await driver.drain()
        await _pump(driver)  # the run as it is now: a per-run driver's

    asyncio.run(scenario())
    assert fake.body["status"] == {"phase": "Pending", "driver": {"starts": 1, "pod": "a-driver-1"}}
    assert driver.held == {}
    assert not serves(fake.body)


async def _pump(driver: SharedDriver) -> None:
    """What serve() does with refetched runs, until nothing is left to do."""
    await asyncio.gather(*driver._refetches)
    while not driver._queue.empty():
        driver.offer(*driver._queue.get_nowait())
    await driver.drain()


def test_a_run_whose_claim_lost_to_a_shared_pending_is_taken_up_without_a_new_event() -> None:
    fake = FakeRuns(_new("a", 1))
    seen = copy.deepcopy(fake.body)
    # The operator wrote first: Pending, shared (its driver was not up yet).
    fake.body["status"] = {"phase": "Pending", "driver": {"shared": True}}
    runs = ManyRuns({})
    runs.by_name["a"] = fake
    driver = SharedDriver(runs, None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]
    driver.retry_delay = 0

    async def scenario() -> None:
        driver.offer("ADDED", seen)
        await driver.drain()
        assert "a" not in driver.held and "history" not in fake.body["status"]
        await _pump(driver)

    asyncio.run(scenario())
    assert fake.body["status"]["phase"] == "Running"
    assert fake.body["status"]["history"][0]["type"] == "WORKFLOW_STARTED"
    assert "a" in driver.held


def test_runs_are_advanced_concurrently() -> None:
    names = ["a", "b", "c", "d"]
    runs = ManyRuns({n: _new(n, 1) for n in names})
    in_flight, most = 0, 0

    class Slow:
        async def patch_status(self, namespace: str, name: str, ops: Any) -> dict[str, Any]:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
            return await runs.patch_status(namespace, name, ops)

    driver = SharedDriver(Slow(), None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        for fake in runs.by_name.values():
            driver.offer("ADDED", copy.deepcopy(fake.body))
        await driver.drain()

    asyncio.run(scenario())
    assert most == len(names)
    assert all(f.body["status"]["phase"] == "Running" for f in runs.by_name.values())


def test_a_relist_older_than_the_claim_does_not_claim_again() -> None:
    fake = FakeRuns(_new("a", 1))
    listed = copy.deepcopy(fake.body)  # listed before the claim landed
    runs = ManyRuns({})
    runs.by_name["a"] = fake
    driver = SharedDriver(runs, None, "ns", "wf", pipeline_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        driver.offer("ADDED", copy.deepcopy(fake.body))
        await driver.drain()
        claimed = fake.patches
        driver.relisted([listed])  # the watch broke and the runs were listed again
        while not driver._queue.empty():
            driver.offer(*driver._queue.get_nowait())  # as serve() does
        await driver.drain()
        assert fake.patches == claimed  # no second claim, refused or not
        assert "a" in driver.held

    asyncio.run(scenario())
