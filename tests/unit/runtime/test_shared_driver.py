"""Shared driver mode: the operator's choice of driver, and one driver for many runs."""

from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any

import pytest

from flux.k8s.kube import RUNS, Conflict, Gone, KubeError, NotFound, PatchTestFailed
from flux.k8s.kube.events import EventRecorder
from flux.k8s.reconcile import Observed, plan_run
from flux.runtime.driver import Driver
from flux.runtime.shared_driver import SharedDriver, serves
from flux.workflow import Workflow
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, plan, run, started, workflow

if TYPE_CHECKING:
    from support.drivers import DriverKube, Runs


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


def test_a_new_run_records_its_revision_before_a_shared_driver_that_is_up_takes_it() -> None:
    observed = Observed(run(), shared_workflow(), [], NOW, shared_driver_up=True)
    result = plan_run(observed, CONFIG)
    # The operator writes first (the driver up may be an older revision's, lingering).
    assert result.status["phase"] == "Pending" and result.status["driver"] == {"shared": True}
    assert result.status["revision"] and result.create == []
    assert result.shared_driver is not None  # still made sure of
    labels = result.shared_driver["metadata"]["labels"]
    assert labels["flux.dev/revision"] == result.status["revision"]


def test_a_shared_driver_serves_only_runs_that_recorded_its_revision() -> None:
    mine = {"revision": "a" * 12, "phase": "Running", "driver": {"shared": True}}
    assert serves(run(mine), "a" * 12)
    assert not serves(run({**mine, "revision": "b" * 12}), "a" * 12)
    assert not serves(run(), "a" * 12)  # not started: the operator records it first
    assert serves(run())  # a driver without a revision (an older operator's) claims


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


def _shared(runs: Runs, name: str, input: int) -> None:
    """A run the operator has already given to the shared driver."""
    runs.new(input, name)
    runs.set_status(name, driver={"shared": True})


def test_one_shared_driver_advances_several_runs_to_their_end(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    names = ["a", "b"]
    for i, name in enumerate(names):
        _shared(runs, name, i + 1)
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)

    async def scenario() -> None:
        for name in names:
            await driver.consider("ADDED", runs.body(name))
        for _ in range(2):
            for name in names:
                stale = runs.body(name)
                stale["metadata"]["resourceVersion"] = "0"
                await driver.consider("MODIFIED", stale)  # older than its own write
                assert driver.held[name].awaiting == runs.body(name)["metadata"]["resourceVersion"]
                assert runs.complete_outstanding(name)
                await driver.consider("MODIFIED", runs.body(name))
        for name in names:
            assert runs.status(name)["phase"] == "Paused", name
            assert not serves(runs.body(name))
            runs.set_status(name, resume={"input": f"ok-{name}"})
            assert serves(runs.body(name))
            await driver.consider("MODIFIED", runs.body(name))

    asyncio.run(scenario())
    for name in names:
        status = runs.status(name)
        assert status["phase"] == "Succeeded"
        assert status["output"]["decision"] == f"ok-{name}"
    assert driver.held == {}  # finished runs are let go
    assert runs.status("a")["output"]["b"] == 4
    assert runs.status("b")["output"]["b"] == 8


def test_the_shared_driver_claims_new_runs_and_announces_their_outcome(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    names = ["a", "b", "c"]
    for i, name in enumerate(names):
        runs.new(i + 1, name)
    events = EventRecorder(kube, "flux-driver")
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf, events=events)

    async def scenario() -> None:
        for name in names:
            driver.offer("ADDED", runs.body(name))
        await driver.drain()
        for name in names:
            status = runs.status(name)
            assert status["driver"] == {"shared": True}
            assert status["phase"] == "Running"
            assert [c["reason"] for c in status["conditions"]] == ["Running"]
        assert runs.events() == []  # running is routine: no Event
        for _ in range(2):
            for name in names:
                runs.complete_outstanding(name)
                driver.offer("MODIFIED", runs.body(name))
            await driver.drain()

    asyncio.run(scenario())
    posted = [(name, kind, reason) for name, kind, reason, _ in runs.events()]
    for name in names:
        assert runs.status(name)["phase"] == "Paused"
        assert runs.status(name)["conditions"][0]["reason"] == "Paused"
        assert (name, "Normal", "Paused") in posted
    assert len(posted) == 3


def test_a_claim_loses_to_the_operator_and_leaves_its_write_alone(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    seen = runs.new(1, "a")  # before the operator's first write
    runs.set_status("a", phase="Pending", driver={"starts": 1, "pod": "a-driver-1"})
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)
    driver.retry_delay = 0

    async def scenario() -> None:
        driver.offer("ADDED", seen)
        await driver.drain()
        await _pump(driver)  # the run as it is now: a per-run driver's

    asyncio.run(scenario())
    assert runs.status("a") == {"phase": "Pending", "driver": {"starts": 1, "pod": "a-driver-1"}}
    assert driver.held == {}
    assert not serves(runs.body("a"))


async def _pump(driver: SharedDriver) -> None:
    """What serve() does with refetched runs, until nothing is left to do."""
    await asyncio.gather(*driver._refetches)
    while not driver._queue.empty():
        driver.offer(*driver._queue.get_nowait())
    await driver.drain()


def test_a_run_whose_claim_lost_to_a_shared_pending_is_taken_up_without_a_new_event(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    seen = runs.new(1, "a")
    # The operator wrote first: Pending, shared (its driver was not up yet).
    runs.set_status("a", phase="Pending", driver={"shared": True})
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)
    driver.retry_delay = 0

    async def scenario() -> None:
        driver.offer("ADDED", seen)
        await driver.drain()
        assert "a" not in driver.held and "history" not in runs.status("a")
        await _pump(driver)

    asyncio.run(scenario())
    assert runs.status("a")["phase"] == "Running"
    assert runs.status("a")["history"][0]["type"] == "WORKFLOW_STARTED"
    assert "a" in driver.held


def test_runs_are_advanced_concurrently(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    names = ["a", "b", "c", "d"]
    for name in names:
        runs.new(1, name)
    in_flight, most = 0, 0
    patch = kube.patch

    async def slow(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return await patch(*args, **kwargs)

    kube.patch = slow  # type: ignore[method-assign]
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)

    async def scenario() -> None:
        for name in names:
            driver.offer("ADDED", runs.body(name))
        await driver.drain()

    asyncio.run(scenario())
    assert most == len(names)
    assert all(runs.status(name)["phase"] == "Running" for name in names)


def test_a_relist_older_than_the_claim_does_not_claim_again(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    listed = runs.new(1, "a")  # listed before the claim landed
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)

    async def scenario() -> None:
        driver.offer("ADDED", copy.deepcopy(listed))
        await driver.drain()
        claimed = runs.writes()
        driver.relisted([listed])  # the watch broke and the runs were listed again
        while not driver._queue.empty():
            driver.offer(*driver._queue.get_nowait())  # as serve() does
        await driver.drain()
        assert runs.writes() == claimed  # no second claim, refused or not
        assert "a" in driver.held

    asyncio.run(scenario())


async def _operator(runs: Runs, names: list[str], until: str) -> None:
    """Play the operator for ``names`` until each run's phase is ``until``."""
    while any(runs.body(n).get("status", {}).get("phase") != until for n in names):
        for name in names:
            if runs.body(name).get("status", {}).get("history"):
                runs.complete_outstanding(name)
        await asyncio.sleep(0.01)


def test_the_shared_driver_serves_through_its_watch_and_lists_again_after_a_410(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.new(1, "a")
    runs.new(2, "b")
    runs.new(3, "other")
    runs.set_status("other", phase="Running", driver={"starts": 1})  # a per-run driver's
    kube.fail("watch", RUNS, Gone("too old resource version"))
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf, linger=0.2)

    async def scenario() -> int:
        serving = asyncio.create_task(driver.serve())
        await asyncio.wait_for(_operator(runs, ["a", "b"], "Paused"), 10)
        return await asyncio.wait_for(serving, 10)  # every run let go: the pod ends

    assert asyncio.run(scenario()) == 0
    assert runs.status("a")["pause"] == {"name": "approve", "output": 4}
    assert runs.status("b")["pause"] == {"name": "approve", "output": 8}
    assert runs.status("other") == {"phase": "Running", "driver": {"starts": 1}}
    assert kube.count("list", RUNS) == 2  # listed again after the 410
    assert kube.count("watch", RUNS) >= 2


@pytest.mark.parametrize(
    ("refusal", "taken_up_again"),
    [
        (Conflict("the object has been modified"), True),  # read again, as it is now
        (NotFound('workflowruns "a" not found'), False),  # deleted: let go for good
    ],
)
def test_a_refused_write_lets_the_run_go(
    kube: DriverKube,
    runs: Runs,
    pipeline_wf: Workflow[Any],
    refusal: KubeError,
    taken_up_again: bool,
) -> None:
    body = runs.new(1, "a")
    kube.fail("patch", "workflowruns/status", refusal)
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf)
    driver.retry_delay = 0

    async def scenario() -> None:
        driver.offer("ADDED", body)
        await driver.drain()
        assert "a" not in driver.held and runs.body("a").get("status") is None
        assert bool(driver._refetches) == taken_up_again
        await _pump(driver)

    asyncio.run(scenario())
    assert ("a" in driver.held) == taken_up_again
    assert (runs.body("a").get("status") or {}).get("phase") == (
        "Running" if taken_up_again else None
    )


def test_a_claim_that_loses_to_the_operator_is_a_failed_patch_test(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    seen = runs.new(1, "a")
    runs.set_status("a", phase="Pending", driver={"shared": True})  # the operator's write
    held = Driver(kube, "ns", "a", pipeline_wf, shared=True)

    async def claim() -> None:
        instance = await held.begin(seen)
        assert instance is not None
        await held.advance(instance, seen)

    with pytest.raises(PatchTestFailed):
        asyncio.run(claim())
    assert runs.status("a") == {"phase": "Pending", "driver": {"shared": True}}
