"""Finished runs deleted when their time to live runs out, at a bounded rate."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from flux.k8s import archive
from flux.k8s.config import OperatorConfig
from flux.k8s.kube import RUNS, WORKFLOWS, Resource
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.events import COMPONENT, BackgroundEvents
from flux.k8s.operator.reconciler import Reconciler
from flux.k8s.operator.retention import Expiry
from flux.k8s.pods import owner_reference


def now(offset: float = 0.0) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)


def workflow(ttl: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"entrypoint": "examples.hello:hello"}
    if ttl is not None:
        spec["runTTLSecondsAfterFinished"] = ttl
    return {
        "metadata": {"name": "wf", "namespace": "ns", "generation": 1},
        "spec": spec,
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "message": "ok", "observedGeneration": 1}
            ]
        },
    }


def finished_run(name: str, ttl: int | None, finished_ago: float = 0.0) -> dict[str, Any]:
    spec: dict[str, Any] = {"workflowRef": {"name": "wf"}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": spec,
        "status": {
            "phase": "Succeeded",
            "startTime": now(-finished_ago - 1).isoformat(),
            "finishTime": now(-finished_ago).isoformat(),
            "output": None,
        },
    }


def operator(kube: FakeKube, **config: Any) -> Reconciler:
    settings = OperatorConfig(default_image="flux-runtime:test", **config)
    return Reconciler(kube, settings, BackgroundEvents(EventRecorder(kube, COMPONENT)))


async def expiring(reconciler: Reconciler, scenario: Callable[[], Awaitable[None]]) -> None:
    """``scenario`` with the operator's expiry task running, as handlers start it."""
    task = asyncio.create_task(reconciler.expire())
    try:
        await scenario()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_gone(kube: FakeKube, name: str, timeout: float = 3.0) -> float:
    started = time.monotonic()
    while kube.stored(RUNS, "ns", name) is not None:
        assert time.monotonic() - started < timeout, f"run {name} was not deleted"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def test_a_finished_run_is_deleted_when_its_ttl_has_passed_and_not_before(
    kube: FakeKube,
) -> None:
    reconciler = operator(kube)
    kube.put(WORKFLOWS, workflow())

    async def scenario() -> None:
        await reconciler.run_event("ADDED", kube.put(RUNS, finished_run("soon", ttl=1)))
        await reconciler.run_event("ADDED", kube.put(RUNS, finished_run("kept", ttl=None)))
        await reconciler.run_event("ADDED", kube.put(RUNS, finished_run("later", ttl=3600)))
        await asyncio.sleep(0.5)
        assert kube.stored(RUNS, "ns", "soon") is not None
        assert 0.2 < await until_gone(kube, "soon") < 1.0
        await asyncio.sleep(0.2)
        assert kube.stored(RUNS, "ns", "kept") is not None
        assert kube.stored(RUNS, "ns", "later") is not None
        assert reconciler.expiry.pending() == 1  # "later", woken for when it is due
        assert kube.count("delete", RUNS) == 1

    asyncio.run(expiring(reconciler, scenario))


def test_the_workflow_default_then_the_operator_default_apply(kube: FakeKube) -> None:
    reconciler = operator(kube, run_ttl_seconds=0)
    kube.put(WORKFLOWS, workflow(ttl=3600))
    other = {**workflow(), "metadata": {"name": "plain", "namespace": "ns", "generation": 1}}
    kube.put(WORKFLOWS, other)
    plain = finished_run("of-plain", ttl=None)
    plain["spec"]["workflowRef"] = {"name": "plain"}

    async def scenario() -> None:
        await reconciler.run_event("ADDED", kube.put(RUNS, finished_run("of-wf", ttl=None)))
        await reconciler.run_event("ADDED", kube.put(RUNS, plain))
        await until_gone(kube, "of-plain")
        assert kube.stored(RUNS, "ns", "of-wf") is not None

    asyncio.run(expiring(reconciler, scenario))


def test_after_a_restart_runs_that_expired_meanwhile_are_deleted(kube: FakeKube) -> None:
    kube.put(WORKFLOWS, workflow())
    for i in range(3):
        kube.put(RUNS, finished_run(f"old-{i}", ttl=60, finished_ago=3600))
    kube.put(RUNS, finished_run("young", ttl=60))
    reconciler = operator(kube)

    async def scenario() -> None:
        # A new operator process lists every run when its watch starts.
        for body in kube.all(RUNS, "ns"):
            await reconciler.run_event(None, body)
        for i in range(3):
            await until_gone(kube, f"old-{i}")
        assert kube.stored(RUNS, "ns", "young") is not None

    asyncio.run(expiring(reconciler, scenario))


def test_a_run_that_is_deleted_or_runs_again_is_not_deleted_by_its_old_expiry(
    kube: FakeKube,
) -> None:
    expiry = Expiry(kube, deletes_per_second=100)
    kube.put(RUNS, finished_run("a", ttl=0))
    kube.put(RUNS, finished_run("b", ttl=0))

    async def scenario() -> None:
        task = asyncio.create_task(expiry.run())
        expiry.schedule(("ns", "a"), now(0.2))
        expiry.schedule(("ns", "b"), now(0.2))
        expiry.schedule(("ns", "a"), None)  # its pass found it running again
        expiry.forget(("ns", "b"))  # deleted by someone else
        expiry.schedule(("ns", "gone"), now(-1))  # NotFound: nothing to do
        await asyncio.sleep(0.4)
        task.cancel()
        assert kube.stored(RUNS, "ns", "a") is not None
        assert kube.stored(RUNS, "ns", "b") is not None
        assert expiry.pending() == 0

    asyncio.run(scenario())


def test_runs_expiring_together_are_deleted_at_the_configured_rate(kube: FakeKube) -> None:
    rate, count = 20.0, 40
    expiry = Expiry(kube, deletes_per_second=rate)
    deleted: list[float] = []
    delete = kube.delete
    all_deleted = asyncio.Event()

    async def timed(resource: Resource, namespace: str, name: str, **kw: Any) -> None:
        deleted.append(time.monotonic())
        await delete(resource, namespace, name, **kw)
        if len(deleted) == count:
            all_deleted.set()

    kube.delete = timed  # type: ignore[method-assign]
    for i in range(count):
        kube.put(RUNS, finished_run(f"r{i}", ttl=0))

    async def scenario() -> None:
        task = asyncio.create_task(expiry.run())
        due = now()
        for i in range(count):
            expiry.schedule(("ns", f"r{i}"), due)
        await asyncio.wait_for(all_deleted.wait(), 10)
        task.cancel()

    asyncio.run(scenario())
    # A burst of one second's worth, then one per 1/rate seconds.
    assert deleted[-1] - deleted[0] == pytest.approx((count - rate) / rate, abs=0.15)
    later = deleted[int(rate) :]
    gaps = [b - a for a, b in itertools.pairwise(later)]
    assert min(gaps) > 0.5 / rate


def test_archive_configmaps_and_pods_name_the_run_as_owner_so_they_go_with_it() -> None:
    run = finished_run("r", ttl=0)
    run["metadata"]["uid"] = "u-1"
    owner = owner_reference(run)
    assert owner["uid"] == "u-1" and owner["kind"] == "WorkflowRun"
    manifest = archive.configmap(run, "r-tasks-0", archive.TASKS, b"[]")
    (reference,) = manifest["metadata"]["ownerReferences"]
    assert reference["uid"] == "u-1" and reference["kind"] == "WorkflowRun"
