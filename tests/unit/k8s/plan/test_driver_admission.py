"""A run waiting for one of the operator's driver pod slots (FLUX_MAX_DRIVER_PODS)."""

from __future__ import annotations

from typing import Any

from flux.k8s.protocol import Outcome, TaskResult
from flux.k8s.reconcile import Observed, Plan, plan_run
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, pod, run, started, workflow


def _plan(status: dict[str, Any] | None = None, slots: int | None = None) -> Plan:
    return plan_run(Observed(run(status), workflow(), [], NOW, driver_slots=slots), CONFIG)


def test_a_new_run_without_a_slot_is_pending_and_queued_with_a_reason() -> None:
    result = _plan(slots=0)
    assert result.create == []
    assert result.status["phase"] == "Pending"
    assert result.status["driver"] == {"starts": 0, "failures": 0, "queued": True}
    (condition,) = result.status["conditions"]
    assert condition["reason"] == "DriverQueued"
    assert "FLUX_MAX_DRIVER_PODS" in condition["message"]
    assert result.events == []  # a condition, not an Event per queued run
    assert result.wake_at is None  # woken when a slot frees up, not by a timer


def test_a_queued_run_given_a_slot_starts_its_driver_and_is_no_longer_queued() -> None:
    queued = _plan(slots=0)
    result = _plan(queued.status, slots=1)
    (driver,) = result.create
    assert driver["metadata"]["labels"]["flux.dev/role"] == "driver"
    assert "queued" not in result.status["driver"]
    assert result.status["driver"]["pod"] == driver["metadata"]["name"]
    (condition,) = result.status["conditions"]
    assert condition["reason"] == "Pending"


def test_a_queued_run_still_without_a_slot_writes_nothing() -> None:
    queued = _plan(slots=0)
    assert _plan(queued.status, slots=0).status == {}


def test_a_running_run_whose_driver_is_needed_again_waits_as_running() -> None:
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0")],
        "tasks": [
            {
                "callId": "say#0",
                "name": "say",
                "state": "Running",
                "attempts": 1,
                "step": "attempt",
                "pod": "p1",
            }
        ],
        "driver": {"starts": 1, "pod": None},
    }
    done = TaskResult(outcome=Outcome.COMPLETED, value="x")
    observed = Observed(
        run(status), workflow(), [pod("p1", "task", "Succeeded", done)], NOW, driver_slots=0
    )
    result = plan_run(observed, CONFIG)
    assert [p["metadata"]["labels"]["flux.dev/role"] for p in result.create] == []
    assert result.status["driver"]["queued"] is True
    (condition,) = result.status["conditions"]
    assert condition["reason"] == "DriverQueued"
    assert condition["message"].startswith("the run is running")


def test_no_bound_starts_the_driver_as_before() -> None:
    assert len(_plan(slots=None).create) == 1
