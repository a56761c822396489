"""A run's cancel (``spec.cancel``) as its driver carries it out (no cluster)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from flux import WorkflowExecutionContext, task, workflow
from flux.engine.instance import WorkflowInstance
from flux.k8s.kube import RUNS
from flux.k8s.kube.events import EventRecorder
from flux.runtime.driver import Driver
from flux.runtime.shared_driver import SharedDriver, serves
from flux.tasks import parallel, sleep
from flux.workflow import Workflow
from support.drivers import double

if TYPE_CHECKING:
    from support.drivers import DriverKube, Runs


def _driver(kube: DriverKube, wf: Workflow[Any]) -> Driver:
    return Driver(kube, "ns", "r1", wf, events=EventRecorder(kube, "flux-driver"))


def _cancel(runs: Runs) -> None:
    body = runs.body()
    body["spec"]["cancel"] = True
    runs.kube.put(RUNS, body)


async def _drive(driver: Driver, runs: Runs, instance: WorkflowInstance | None = None) -> Any:
    """One look at the run by ``driver`` (a new one replays it first)."""
    if instance is None:
        instance = await driver.begin(runs.body())
        assert instance is not None
    await driver.advance(instance, runs.body())
    return instance


def _types(runs: Runs) -> list[tuple[str, str]]:
    return [(e["type"], e["sourceId"]) for e in runs.status()["history"]]


def _cancelled_condition(runs: Runs) -> None:
    status = runs.status()
    assert status["phase"] == "Cancelled" and status["finishTime"]
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "Cancelled")
    assert ("r1", "Warning", "Cancelled", "the run was cancelled") in runs.events()


def test_a_cancel_asks_the_operator_to_stop_the_tasks_and_ends_with_their_outcome(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.new(3)

    async def scenario() -> None:
        driver = _driver(kube, pipeline_wf)
        instance = await _drive(driver, runs)
        assert runs.status()["phase"] == "Running"
        _cancel(runs)
        await _drive(driver, runs, instance)
        # The call in flight is the operator's to stop (its rollback runs there).
        assert runs.status()["cancelRequested"] == ["double#0"]
        assert runs.status()["phase"] == "Running"
        # A driver restarted meanwhile (linger, crash) asks again and writes nothing new.
        writes = runs.writes()
        await _drive(_driver(kube, pipeline_wf), runs)
        assert runs.writes() == writes
        rollback = [{"type": "TASK_ROLLBACK_STARTED"}, {"type": "TASK_ROLLBACK_COMPLETED"}]
        record = {"callId": "double#0", "name": "double", "state": "Cancelled", "steps": rollback}
        runs.set_status(tasks=[record])
        await _drive(driver, runs, instance)

    asyncio.run(scenario())
    _cancelled_condition(runs)
    assert _types(runs) == [
        ("WORKFLOW_STARTED", "r1"),
        ("TASK_STARTED", "double#0"),
        ("TASK_ROLLBACK_STARTED", "double#0"),
        ("TASK_ROLLBACK_COMPLETED", "double#0"),
        ("TASK_CANCELLED", "double#0"),
        ("WORKFLOW_CANCELLED", "r1"),
    ]
    assert "cancelRequested" not in runs.status()


def test_a_paused_run_is_cancelled_by_the_driver_started_for_it(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.new(3)

    async def scenario() -> None:
        driver = _driver(kube, pipeline_wf)
        instance = await _drive(driver, runs)
        for _ in range(2):
            runs.complete_outstanding()
            await _drive(driver, runs, instance)
        assert runs.status()["phase"] == "Paused"
        _cancel(runs)
        await _drive(_driver(kube, pipeline_wf), runs)

    asyncio.run(scenario())
    _cancelled_condition(runs)
    assert _types(runs)[-2:] == [("WORKFLOW_CANCELLED", "r1"), ("TASK_CANCELLED", "pause#0")]
    assert "pause" not in runs.status()
    # A shared driver takes up a paused run for its cancel, and leaves a finished one.
    paused = {**runs.body(), "status": {"phase": "Paused", "driver": {"shared": True}}}
    assert serves(paused)
    assert not serves({**paused, "spec": {"workflowRef": {"name": "wf"}}})
    assert not serves({**paused, "status": {**runs.status(), "driver": {"shared": True}}})


def test_a_run_cancelled_before_it_started_ends_in_one_write_and_runs_nothing(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.add({**runs.new(3), "spec": {"workflowRef": {"name": "wf"}, "input": 3, "cancel": True}})
    asyncio.run(_drive(_driver(kube, pipeline_wf), runs))
    _cancelled_condition(runs)
    assert runs.writes() == 1
    # No pod can exist for a call never written: it is recorded cancelled at once.
    assert _types(runs) == [
        ("WORKFLOW_STARTED", "r1"),
        ("TASK_STARTED", "double#0"),
        ("TASK_CANCELLED", "double#0"),
        ("WORKFLOW_CANCELLED", "r1"),
    ]


@task
def tick() -> int:
    return 1


@workflow
async def sleepy(ctx: WorkflowExecutionContext[None]) -> int:
    await sleep(dt.timedelta(hours=1))
    return await tick()


def test_a_cancelled_sleep_ends_at_once(kube: DriverKube, runs: Runs) -> None:
    runs.new(None)

    async def scenario() -> None:
        driver = _driver(kube, sleepy)
        instance = await _drive(driver, runs)
        assert driver.next_wait(instance, instance.ctx.events[0].time) is None  # a long sleep
        _cancel(runs)
        await _drive(_driver(kube, sleepy), runs)

    asyncio.run(scenario())
    _cancelled_condition(runs)
    # The sleep's end follows the run's, as the embedded executor records it.
    assert _types(runs)[-2:] == [("WORKFLOW_CANCELLED", "r1"), ("TASK_CANCELLED", "sleep#0")]


@workflow
async def branches(ctx: WorkflowExecutionContext[None]) -> Any:
    async def chain() -> int:
        return await double(await double(1))

    return await parallel(chain(), double(10), double(20))


def test_a_driver_restarted_halfway_through_a_cancel_replays_it_where_it_came(
    kube: DriverKube, runs: Runs
) -> None:
    # A driver exits during a long rollback (its linger time) and a new one replays.
    # double#0 finished before its pod could be stopped: its result reached a
    # workflow that had given up on it, so the chain never made its next call. A
    # replay that delivered it to a workflow not yet cancelled would make that call,
    # which history lacks before double#1's outcome: a divergence, the run Failed.
    runs.new(None)

    async def scenario() -> None:
        driver = _driver(kube, branches)
        instance = await _drive(driver, runs)
        _cancel(runs)
        await _drive(driver, runs, instance)
        assert runs.status()["cancelledAfter"] == 4  # WORKFLOW_STARTED, three TASK_STARTED
        completed = {"callId": "double#0", "name": "double", "state": "Completed", "output": 2}
        cancelled = {"callId": "double#1", "name": "double", "state": "Cancelled"}
        runs.set_status(tasks=[completed, cancelled])
        await _drive(driver, runs, instance)
        assert runs.status()["phase"] == "Running"  # double#2 is still rolling back
        last = {"callId": "double#2", "name": "double", "state": "Cancelled"}
        runs.set_status(tasks=[last])
        await _drive(_driver(kube, branches), runs)

    asyncio.run(scenario())
    _cancelled_condition(runs)
    assert "double#3" not in {source for _, source in _types(runs)}


def test_the_shared_driver_cancels_a_run_it_holds_and_one_it_let_go_paused(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    for name in ("held", "paused"):
        runs.new(1, name)
    driver = SharedDriver(kube, "ns", "wf", pipeline_wf, events=EventRecorder(kube, "d"))

    def cancel(name: str) -> None:
        body = runs.body(name)
        body["spec"]["cancel"] = True
        driver.offer("MODIFIED", runs.kube.put(RUNS, body))

    async def scenario() -> None:
        for name in ("held", "paused"):
            driver.offer("ADDED", runs.body(name))
        await driver.drain()
        for _ in range(2):
            runs.complete_outstanding("paused")
            driver.offer("MODIFIED", runs.body("paused"))
            await driver.drain()
        assert runs.status("paused")["phase"] == "Paused" and "paused" not in driver.held
        cancel("held")
        cancel("paused")
        await driver.drain()
        assert runs.status("held")["cancelRequested"] == ["double#0"]
        runs.set_status("held", tasks=[{"callId": "double#0", "name": "d", "state": "Cancelled"}])
        driver.offer("MODIFIED", runs.body("held"))
        await driver.drain()

    asyncio.run(scenario())
    for name in ("held", "paused"):
        assert runs.status(name)["phase"] == "Cancelled", name
    assert driver.held == {}
    assert {(name, reason) for name, _, reason, _ in runs.events()} >= {
        ("held", "Cancelled"),
        ("paused", "Cancelled"),
    }
