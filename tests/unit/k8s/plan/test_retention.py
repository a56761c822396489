"""When a finished run expires, and the token bucket that paces the deletions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flux.k8s.retention import TokenBucket, expires_at, ttl_seconds

FINISHED = "2026-01-01T10:00:00+00:00"


def run(ttl: int | None = None, phase: str = "Succeeded", finish: str | None = FINISHED) -> Any:
    spec: dict[str, Any] = {"workflowRef": {"name": "wf"}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    status: dict[str, Any] = {"phase": phase}
    if finish is not None:
        status["finishTime"] = finish
    return {"metadata": {"name": "r", "namespace": "ns"}, "spec": spec, "status": status}


def workflow(ttl: int | None) -> Any:
    spec: dict[str, Any] = {"entrypoint": "m:f"}
    if ttl is not None:
        spec["runTTLSecondsAfterFinished"] = ttl
    return {"metadata": {"name": "wf", "namespace": "ns"}, "spec": spec}


def test_the_run_s_own_ttl_wins_then_the_workflow_s_then_the_operator_s() -> None:
    assert ttl_seconds(run(30), workflow(60), 90) == 30
    assert ttl_seconds(run(0), workflow(60), 90) == 0
    assert ttl_seconds(run(), workflow(60), 90) == 60
    assert ttl_seconds(run(), workflow(None), 90) == 90
    assert ttl_seconds(run(), None, 90) == 90
    assert ttl_seconds(run(), workflow(None), None) is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
def test_a_finished_run_expires_ttl_seconds_after_its_finish_time(phase: str) -> None:
    at = expires_at(run(30, phase), None, None)
    assert at == dt.datetime(2026, 1, 1, 10, 0, 30, tzinfo=dt.UTC)
    # As the API server writes times too.
    zulu = expires_at(run(30, phase, "2026-01-01T10:00:00Z"), None, None)
    assert zulu == at


@pytest.mark.parametrize("phase", ["Pending", "Running", "Paused"])
def test_a_run_not_finished_does_not_expire(phase: str) -> None:
    assert expires_at(run(0, phase), workflow(0), 0) is None


def test_a_run_without_a_ttl_or_a_finish_time_does_not_expire() -> None:
    assert expires_at(run(), workflow(None), None) is None
    assert expires_at(run(0, finish=None), None, None) is None


def test_a_ttl_past_the_calendar_is_kept_not_a_crash() -> None:
    # The CRD caps it at an int32; a run that reached the operator otherwise is kept.
    assert expires_at(run(10**15), None, None) is None


def test_the_bucket_allows_a_burst_then_one_deletion_per_token_earned() -> None:
    bucket = TokenBucket.full(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
    # Idle time earns tokens up to the burst, no more.
    assert [bucket.take(100.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) > 0


def test_a_thousand_deletions_take_their_time_at_the_rate() -> None:
    bucket = TokenBucket.full(rate=10, burst=10, now=0.0)
    now, done = 0.0, []
    while len(done) < 1000:
        wait = bucket.take(now)
        if wait:
            now += wait
        else:
            done.append(now)
    assert done[-1] == pytest.approx(99.0)
    per_second = [sum(1 for t in done if s <= t < s + 1) for s in range(99)]
    assert max(per_second) <= 20 and max(per_second[1:]) <= 11
