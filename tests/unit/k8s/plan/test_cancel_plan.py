"""The operator's part of a run's cancel (``spec.cancel``): when a driver is needed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flux.k8s.reconcile import Observed, plan_run
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, pod, run, started, workflow


def _plan(status: dict[str, Any], pods: list[dict[str, Any]] | None = None) -> Any:
    body = run(status)
    body["spec"]["cancel"] = True
    return plan_run(Observed(body, workflow(), pods or [], NOW), CONFIG)


def _drivers_started(result: Any) -> int:
    return sum(p["metadata"]["labels"]["flux.dev/role"] == "driver" for p in result.create)


def _sleep(until: dt.datetime) -> dict[str, Any]:
    value = {"until": until.isoformat(), "seconds": 3600}
    return {"id": 2, "type": "TASK_STARTED", "sourceId": "sleep#0", "name": "sleep", "value": value}


def test_a_cancelled_paused_run_gets_a_driver_to_end_it() -> None:
    status = {"phase": "Paused", "history": [WF_STARTED], "driver": {"starts": 1, "pod": None}}
    assert _drivers_started(_plan(status)) == 1


def test_a_cancelled_run_asleep_without_a_driver_gets_one() -> None:
    # Its last driver exited to wait out a long sleep: nothing else would wake it now.
    history = [WF_STARTED, _sleep(NOW + dt.timedelta(hours=1))]
    status = {"phase": "Running", "history": history, "driver": {"starts": 1, "pod": None}}
    assert _drivers_started(_plan(status)) == 1


def test_a_cancelled_run_with_no_driver_yet_gets_one() -> None:
    # A new run created with spec.cancel, or a Pending one: its driver ends it Cancelled.
    result = _plan({})
    assert result.status["phase"] == "Pending" and _drivers_started(result) == 1


def test_once_the_driver_took_the_cancel_only_outcomes_bring_it_back() -> None:
    # Rollbacks may take long; a driver restarted each linger time would be waste.
    record = {"callId": "say#0", "name": "say", "state": "Running", "step": "attempt"}
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0", has_rollback=True)],
        "driver": {"starts": 1, "pod": None},
        "cancelRequested": ["say#0"],
        "tasks": [{**record, "attempts": 1, "pod": "p1"}],
    }
    stopping = _plan(status, [pod("p1", "task", "Running")])
    (rolling_back,) = stopping.status["tasks"]
    assert rolling_back["state"] == "RollingBack" and _drivers_started(stopping) == 0
    status = {**status, "tasks": [rolling_back]}
    assert _drivers_started(_plan(status, [pod(rolling_back["pod"], "task", "Running")])) == 0
    # Its call not yet handed over: a driver must come and ask.
    assert _drivers_started(_plan({**status, "cancelRequested": None})) == 1
    # Its outcome in: a driver delivers it and ends the run.
    done = {"callId": "say#0", "name": "say", "state": "Cancelled", "pod": None}
    assert _drivers_started(_plan({**status, "tasks": [done]})) == 1


def test_a_cancel_of_a_finished_run_changes_nothing() -> None:
    status = {
        "phase": "Succeeded",
        "history": [WF_STARTED],
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "Succeeded",
                "message": "the workflow completed",
                "lastTransitionTime": NOW.isoformat(),
                "observedGeneration": 1,
            }
        ],
    }
    result = _plan(status)
    assert not result.create and not result.status and not result.events
    # Setting spec.cancel made a new generation: the condition notes it, no Event
    # announces the outcome a second time.
    body = run(status)
    body["spec"]["cancel"] = True
    body["metadata"]["generation"] = 2
    later = plan_run(Observed(body, workflow(), [], NOW), CONFIG)
    (condition,) = later.status["conditions"]
    assert condition["observedGeneration"] == 2 and condition["reason"] == "Succeeded"
    assert later.events == [] and not later.create
