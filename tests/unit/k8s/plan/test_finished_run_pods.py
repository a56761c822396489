"""A finished run's pods go, but the driver that finished it may first post its Event.

The driver writes the run's end, then posts the Event announcing it with its
pod-bound token. Deleting its pod as soon as the end is seen voids that token,
and the Event was lost (seen on the cluster as a run with its condition and no
Event).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flux.k8s.reconcile import DRIVER_EXIT_GRACE
from support.k8s_bodies import NOW, WF_STARTED, plan, pod, started

ENDED = {"id": 2, "type": "WORKFLOW_FAILED", "sourceId": "r1", "time": NOW.isoformat()}


def _failed(history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "phase": "Failed",
        "history": history,
        "finishTime": NOW.isoformat(),
        "error": {"type": "WorkflowInputError", "message": "input: bad"},
        "driver": {"starts": 1, "pod": "d"},
    }


def test_the_driver_that_ended_the_run_is_left_to_exit() -> None:
    pods = [pod("d", "driver", "Running"), pod("t", "task", "Running")]
    result = plan(_failed([WF_STARTED, ENDED]), pods, now=NOW + dt.timedelta(seconds=1))
    assert result.delete == ["t"]
    assert result.wake_at == NOW + DRIVER_EXIT_GRACE
    assert result.events and result.events[0][1] == "InvalidInput"


def test_it_goes_once_it_has_exited_or_its_time_is_up() -> None:
    exited = plan(_failed([WF_STARTED, ENDED]), [pod("d", "driver", "Succeeded")])
    assert exited.delete == ["d"]
    late = NOW + DRIVER_EXIT_GRACE
    stuck = plan(_failed([WF_STARTED, ENDED]), [pod("d", "driver", "Running")], now=late)
    assert stuck.delete == ["d"]


def test_a_run_ended_by_someone_else_loses_its_driver_at_once() -> None:
    # No final event in history: the operator (or a person) ended it, not the driver.
    result = plan(_failed([WF_STARTED]), [pod("d", "driver", "Running")])
    assert result.delete == ["d"]


def test_a_finished_run_starts_no_pod_for_the_calls_it_left_open() -> None:
    # The driver died after recording the end, before the cancellations of the calls
    # the workflow left behind: those stay open in history and get no pod.
    cancelled = {**ENDED, "id": 3, "type": "WORKFLOW_CANCELLED"}
    status = {**_failed([WF_STARTED, started("say#1"), cancelled]), "phase": "Cancelled"}
    result = plan(status, [pod("t", "task", "Running")])
    assert result.create == [] and result.shared_driver is None
    assert result.delete == ["t"]
    assert "tasks" not in result.status
