"""A run's Succeeded condition on plain JSON (flux.k8s.run_conditions): what the
driver writes without pydantic is what the CRD models would write."""

from __future__ import annotations

import datetime as dt

import pytest

from flux.k8s import run_conditions
from flux.k8s.models import Condition, to_json
from flux.k8s.timestamps import format_time

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 1, 1, 12, 5, 0, 250000, tzinfo=dt.UTC)


@pytest.mark.parametrize("moment", [T0, T1])
def test_times_are_written_as_the_models_write_them(moment: dt.datetime) -> None:
    model = Condition(type="Succeeded", status="True", last_transition_time=moment)
    assert format_time(moment) == to_json(model)["lastTransitionTime"]


def test_a_time_in_another_zone_is_written_in_utc() -> None:
    moment = dt.datetime(2026, 6, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert format_time(moment) == "2026-06-01T12:00:00Z"


@pytest.mark.parametrize(
    "status",
    [
        {"phase": "Succeeded"},
        {"phase": "Failed", "error": {"type": "WorkflowInputError", "message": "bad"}},
        {"phase": "Failed", "error": {"type": "ValueError", "message": "boom"}},
        {"phase": "Cancelled"},
        {"phase": "Paused", "pause": {"name": "approve"}},
        {"phase": "Pending", "driver": {"queued": True}},
        {"phase": "Running"},
        {},
    ],
)
def test_the_written_conditions_are_valid_conditions_in_the_models_form(
    status: dict[str, object],
) -> None:
    update = run_conditions.succeeded_update(status, T1, generation=3)
    assert update is not None
    (written,) = update.conditions
    assert to_json(Condition.model_validate(written)) == written
    assert written["lastTransitionTime"] == "2026-01-01T12:05:00.250000Z"
    assert written["observedGeneration"] == 3


def test_the_transition_time_moves_only_with_the_status_and_news_is_announced_once() -> None:
    first = run_conditions.succeeded_update({"phase": "Running"}, T0)
    assert first is not None and first.events == []  # Running is quiet
    running = {"phase": "Running", "conditions": first.conditions}
    assert run_conditions.succeeded_update(running, T1) is None
    failed = run_conditions.succeeded_update(
        {"phase": "Failed", "error": {"message": "boom"}, "conditions": first.conditions}, T1
    )
    assert failed is not None
    assert failed.events == [("Warning", "WorkflowFailed", "boom")]
    assert failed.conditions[0]["lastTransitionTime"] == "2026-01-01T12:05:00.250000Z"
    # Another generation of the same outcome: recorded, not announced again.
    again = run_conditions.succeeded_update(
        {"phase": "Failed", "error": {"message": "boom"}, "conditions": failed.conditions},
        T1 + dt.timedelta(minutes=1),
        generation=2,
    )
    assert again is not None and again.events == []
    assert again.conditions[0]["lastTransitionTime"] == failed.conditions[0]["lastTransitionTime"]


def test_entries_that_are_not_conditions_are_dropped_not_fatal() -> None:
    update = run_conditions.succeeded_update({"phase": "Succeeded", "conditions": ["x", 3]}, T0)
    assert update is not None and [c["type"] for c in update.conditions] == ["Succeeded"]
