"""Workflow schedules in the operator, on FakeKube: runs started once, Forbid,
Replace, the Workflow's status and a schedule it cannot evaluate."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from flux.k8s.config import OperatorConfig
from flux.k8s.kube import EVENTS, RUNS, WORKFLOWS, Resource
from flux.k8s.kube.client import Body
from flux.k8s.kube.events import EventRecorder
from flux.k8s.kube.fake import FakeKube
from flux.k8s.operator.events import COMPONENT, BackgroundEvents
from flux.k8s.operator.reconciler import Reconciler
from flux.k8s.schedules import parse_time, run_name

SOURCE = "def f(x):\n    return x\n"


def scheduled_workflow(*schedules: dict[str, Any], age: float = 180, generation: int = 1) -> Any:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    return {
        "metadata": {
            "name": "wf",
            "namespace": "ns",
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generation": generation,
        },
        "spec": {"source": SOURCE, "function": "f", "schedules": list(schedules)},
    }


def latest_minute() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)


def schedule_status(kube: FakeKube) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"][
        "schedules"
    ]
    return entries


def earlier_run(kube: FakeKube, phase: str | None = None) -> None:
    """An unfinished run schedule "tick" started earlier, named wf-tick-1."""
    labels = {"flux.dev/workflow": "wf", "flux.dev/schedule": "tick"}
    run: dict[str, Any] = {
        "metadata": {"name": "wf-tick-1", "namespace": "ns", "labels": labels},
        "spec": {"workflowRef": {"name": "wf"}},
    }
    if phase is not None:
        run["status"] = {"phase": phase}
    kube.put(RUNS, run)


async def reasons(reconciler: Reconciler, kube: FakeKube) -> list[str]:
    await reconciler.events.drain()
    return [e["reason"] for e in kube.all(EVENTS, "ns")]


def test_a_due_schedule_starts_its_run_once(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        tick = {"name": "tick", "cron": "* * * * *", "input": {"n": 1}}
        body = kube.put(WORKFLOWS, scheduled_workflow(tick))
        await reconciler.workflow_event(None, body)
        minute = latest_minute()
        (run,) = kube.all(RUNS, "ns")
        meta = run["metadata"]
        assert meta["name"] == run_name("wf", "tick", minute)
        assert meta["labels"] == {"flux.dev/workflow": "wf", "flux.dev/schedule": "tick"}
        assert (meta["ownerReferences"][0]["kind"], meta["ownerReferences"][0]["name"]) == (
            "Workflow",
            "wf",
        )
        assert run["spec"] == {"workflowRef": {"name": "wf"}, "input": {"n": 1}}
        (entry,) = schedule_status(kube)
        assert parse_time(entry["lastScheduleTime"]) == minute
        assert parse_time(entry["nextScheduleTime"]) == minute + dt.timedelta(minutes=1)
        assert "RunScheduled" in await reasons(reconciler, kube)
        # Its own write seen again: nothing due, nothing written.
        writes = kube.count("patch", "workflows/status")
        await reconciler.workflow_event("MODIFIED", kube.stored(WORKFLOWS, "ns", "wf") or {})
        assert kube.count("patch", "workflows/status") == writes
        # A restart (status lost from the view): no second run.
        reconciler.cache.forget_workflow("ns", "wf")
        await reconciler.workflow_event(None, body)
        assert len(kube.all(RUNS, "ns")) == 1

    asyncio.run(scenario())


def test_a_schedule_added_to_an_edited_workflow_counts_from_now(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        hourly = {"name": "hourly", "cron": "@hourly"}
        body = kube.put(WORKFLOWS, scheduled_workflow(hourly, age=7200, generation=2))
        await reconciler.workflow_event(None, body)
        assert kube.all(RUNS, "ns") == []
        (entry,) = schedule_status(kube)
        assert "lastScheduleTime" not in entry
        since = parse_time(entry["sinceTime"])
        assert since is not None and dt.datetime.now(dt.UTC) - since < dt.timedelta(seconds=5)
        next_time = parse_time(entry["nextScheduleTime"])
        assert next_time is not None and next_time.minute == 0 and next_time > since

    asyncio.run(scenario())


def test_forbid_waits_for_the_unfinished_run(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        tick = {"name": "tick", "cron": "* * * * *", "concurrencyPolicy": "Forbid"}
        earlier_run(kube, "Running")
        body = kube.put(WORKFLOWS, scheduled_workflow(tick))
        await reconciler.workflow_event(None, body)
        assert [r["metadata"]["name"] for r in kube.all(RUNS, "ns")] == ["wf-tick-1"]
        (entry,) = schedule_status(kube)
        assert "lastScheduleTime" not in entry and "nextScheduleTime" in entry
        assert "ScheduleSkipped" in await reasons(reconciler, kube)
        # The run ends: its watch event wakes the schedule, which starts the missed time.
        old = kube.stored(RUNS, "ns", "wf-tick-1") or {}
        old["status"]["phase"] = "Succeeded"
        await reconciler.run_event("MODIFIED", kube.put(RUNS, old))
        names = sorted(r["metadata"]["name"] for r in kube.all(RUNS, "ns"))
        assert names == sorted(["wf-tick-1", run_name("wf", "tick", latest_minute())])

    asyncio.run(scenario())


def test_replace_cancels_the_unfinished_run(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        tick = {"name": "tick", "cron": "* * * * *", "concurrencyPolicy": "Replace"}
        earlier_run(kube)
        await reconciler.workflow_event(None, kube.put(WORKFLOWS, scheduled_workflow(tick)))
        old = kube.stored(RUNS, "ns", "wf-tick-1") or {}
        assert old["spec"]["cancel"] is True
        assert kube.stored(RUNS, "ns", run_name("wf", "tick", latest_minute())) is not None
        assert "RunReplaced" in await reasons(reconciler, kube)

    asyncio.run(scenario())


def test_a_suspended_schedule_starts_nothing(kube: FakeKube, reconciler: Reconciler) -> None:
    async def scenario() -> None:
        tick = {"name": "tick", "cron": "* * * * *", "suspend": True}
        await reconciler.workflow_event(None, kube.put(WORKFLOWS, scheduled_workflow(tick)))
        assert kube.all(RUNS, "ns") == []
        (entry,) = schedule_status(kube)
        assert set(entry) == {"name", "sinceTime"}

    asyncio.run(scenario())


def test_an_invalid_schedule_is_a_condition_and_a_warning(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    async def scenario() -> None:
        bad = {"name": "typo", "cron": "* * * * *", "timeZone": "Europe/Atlantis"}
        good = {"name": "tick", "cron": "* * * * *"}
        await reconciler.workflow_event(None, kube.put(WORKFLOWS, scheduled_workflow(bad, good)))
        status = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["status"] == "True"
        scheduled = conditions["Scheduled"]
        assert (scheduled["status"], scheduled["reason"]) == ("False", "InvalidSchedule")
        assert "schedule typo: unknown time zone 'Europe/Atlantis'" in scheduled["message"]
        await reconciler.events.drain()
        warnings = [e for e in kube.all(EVENTS, "ns") if e["type"] == "Warning"]
        assert [e["reason"] for e in warnings] == ["InvalidSchedule"]
        # The good schedule goes on.
        assert [r["metadata"]["labels"]["flux.dev/schedule"] for r in kube.all(RUNS, "ns")] == [
            "tick"
        ]
        # Schedules removed: their status and condition go too.
        body = kube.stored(WORKFLOWS, "ns", "wf") or {}
        body["spec"].pop("schedules")
        await reconciler.workflow_event("MODIFIED", kube.put(WORKFLOWS, body))
        status = (kube.stored(WORKFLOWS, "ns", "wf") or {})["status"]
        assert [c["type"] for c in status["conditions"]] == ["Ready"]
        assert "schedules" not in status

    asyncio.run(scenario())


class PruningKube(FakeKube):
    """An API server whose WorkflowRun CRD has no spec.cancel: it prunes the field."""

    async def patch(
        self, resource: Resource, namespace: str, name: str, patch: Any, **kw: Any
    ) -> Body:
        written = await super().patch(resource, namespace, name, patch, **kw)
        if resource == RUNS:
            written["spec"].pop("cancel", None)
            (self.objects[(RUNS.plural, namespace, name)]["spec"]).pop("cancel", None)
        return written


def test_replace_deletes_the_run_where_cancel_is_pruned(operator_config: OperatorConfig) -> None:
    kube = PruningKube()
    reconciler = Reconciler(kube, operator_config, BackgroundEvents(EventRecorder(kube, COMPONENT)))

    async def scenario() -> None:
        tick = {"name": "tick", "cron": "* * * * *", "concurrencyPolicy": "Replace"}
        earlier_run(kube)
        await reconciler.workflow_event(None, kube.put(WORKFLOWS, scheduled_workflow(tick)))
        assert [r["metadata"]["name"] for r in kube.all(RUNS, "ns")] == [
            run_name("wf", "tick", latest_minute())
        ]
        await reconciler.events.drain()
        (replaced,) = [e for e in kube.all(EVENTS, "ns") if e["reason"] == "RunReplaced"]
        assert "deleted run wf-tick-1" in replaced["message"]

    asyncio.run(scenario())


def test_after_an_outage_the_starting_deadline_decides(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    now = dt.datetime.now(dt.UTC)
    two_years_ago = dt.datetime(now.year - 2, 1, 1, tzinfo=dt.UTC)
    held = {"name": "yearly", "lastScheduleTime": two_years_ago.strftime("%Y-%m-%dT%H:%M:%SZ")}

    async def scenario(deadline: int | None) -> list[str]:
        yearly: dict[str, Any] = {"name": "yearly", "cron": "@yearly"}
        if deadline is not None:
            yearly["startingDeadlineSeconds"] = deadline
        body = scheduled_workflow(yearly, age=3 * 366 * 86400)
        body["metadata"]["uid"] = "uid-wf"
        body["status"] = {"schedules": [held]}
        await reconciler.workflow_event(None, kube.put(WORKFLOWS, body))
        return [r["metadata"]["name"] for r in kube.all(RUNS, "ns")]

    # Missed by far more than a minute: dropped, and the status still says when it last ran.
    assert asyncio.run(scenario(60)) == []
    (entry,) = schedule_status(kube)
    assert parse_time(entry["lastScheduleTime"]) == two_years_ago
    # No deadline: the most recent missed time, this year's, starts (only it).
    started = asyncio.run(scenario(None))
    assert started == [run_name("wf", "yearly", dt.datetime(now.year, 1, 1, tzinfo=dt.UTC))]
