"""The shared driver pods' lifecycle: started once, backoff after failures, runs woken."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from flux.k8s import metrics
from flux.k8s.kube import PODS, RUNS, Forbidden
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.shared_drivers import SharedDrivers


def driver(
    phase: str | None = None, name: str = "wf-driver-1", revision: str = "a" * 12
) -> dict[str, Any]:
    labels = {"flux.dev/workflow": "wf", "flux.dev/role": "shared-driver"}
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {**labels, "flux.dev/revision": revision},
        }
    }
    if phase:
        body["status"] = {"phase": phase}
    return body


class Woken:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    async def __call__(self, namespace: str, name: str) -> None:
        self.runs.append((namespace, name))


def test_a_driver_is_started_once_and_counts_as_up_from_then(kube: FakeKube) -> None:
    async def scenario() -> None:
        drivers = SharedDrivers(kube, Woken())
        assert not drivers.is_up("ns", "wf")
        assert await drivers.ensure(driver()) is None
        assert drivers.is_up("ns", "wf")
        assert await drivers.ensure(driver()) is None
        assert kube.count("create", PODS) == 1

    asyncio.run(scenario())


def test_a_driver_already_there_is_up_and_a_refused_one_is_not(kube: FakeKube) -> None:
    async def scenario() -> None:
        kube.put(PODS, driver())
        drivers = SharedDrivers(kube, Woken())
        assert await drivers.ensure(driver()) is None
        assert drivers.is_up("ns", "wf")
        others = SharedDrivers(FakeKube(), Woken())
        others.kube.fail("create", PODS, Forbidden("quota"))  # type: ignore[attr-defined]
        with pytest.raises(Forbidden):
            await others.ensure(driver())
        assert not others.is_up("ns", "wf")

    asyncio.run(scenario())


def test_a_failed_driver_is_cleared_away_and_restarted_after_a_backoff(kube: FakeKube) -> None:
    async def scenario() -> None:
        drivers = SharedDrivers(kube, Woken())
        await drivers.ensure(driver())
        await drivers.changed("MODIFIED", driver("Failed"))
        assert kube.all(PODS) == []  # cleared away
        await drivers.changed("DELETED", driver("Failed"))
        assert not drivers.is_up("ns", "wf")
        wait = await drivers.ensure(driver(name="wf-driver-2"))
        assert wait is not None and wait > dt.datetime.now(dt.UTC)
        assert kube.count("create", PODS) == 1  # not before the backoff

    asyncio.run(scenario())


def test_a_restart_after_the_backoff_is_counted(kube: FakeKube, monkeypatch: Any) -> None:
    async def scenario() -> None:
        drivers = SharedDrivers(kube, Woken())
        await drivers.changed("MODIFIED", driver("Failed"))
        await drivers.changed("DELETED", driver("Failed"))
        restarts = metrics.DRIVER_RESTARTS.labels("wf")
        before = restarts._value.get()
        later = dt.datetime.now(dt.UTC).timestamp() + 120
        monkeypatch.setattr("flux.k8s.operator.shared_drivers.time.time", lambda: later)
        assert await drivers.ensure(driver(name="wf-driver-2")) is None
        assert restarts._value.get() == before + 1

    asyncio.run(scenario())


def test_a_running_driver_seen_after_a_restart_is_up(kube: FakeKube) -> None:
    async def scenario() -> None:
        drivers = SharedDrivers(kube, Woken())
        await drivers.changed("MODIFIED", driver("Running"))
        assert drivers.is_up("ns", "wf")
        await drivers.changed("MODIFIED", driver("Succeeded"))  # gone already: no error
        assert drivers.is_up("ns", "wf")  # until its deletion shows

    asyncio.run(scenario())


def test_a_driver_gone_wakes_its_shared_and_unclaimed_runs(kube: FakeKube) -> None:
    async def scenario() -> None:
        def run(name: str, workflow: str = "wf", **status: Any) -> dict[str, Any]:
            body: dict[str, Any] = {
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"workflowRef": {"name": workflow}},
            }
            if status:
                body["status"] = status
            return body

        for body in (
            run("unclaimed"),
            run("shared", phase="Running", driver={"shared": True}),
            run("shared-done", phase="Succeeded", driver={"shared": True}),
            run("own-driver", phase="Running", driver={"starts": 1}),
            run("other-workflow", "wf2"),
        ):
            kube.put(RUNS, body)
        woken = Woken()
        drivers = SharedDrivers(kube, woken)
        await drivers.changed("DELETED", driver())
        assert sorted(woken.runs) == [("ns", "shared"), ("ns", "unclaimed")]

    asyncio.run(scenario())


def test_a_run_of_another_revision_waits_for_the_driver_up_to_go(kube: FakeKube) -> None:
    async def scenario() -> None:
        woken = Woken()
        drivers = SharedDrivers(kube, woken)
        assert await drivers.ensure(driver()) is None
        wait = await drivers.ensure(driver(revision="b" * 12))
        assert wait is not None and wait > dt.datetime.now(dt.UTC)
        assert kube.count("create", PODS) == 1
        # The older one goes (idle past its linger time): the next run starts its own.
        await drivers.changed("DELETED", driver())
        assert await drivers.ensure(driver(revision="b" * 12)) is None
        assert kube.count("create", PODS) == 2

    asyncio.run(scenario())
