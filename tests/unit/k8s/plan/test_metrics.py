"""Operator metrics: the pure deltas of a reconcile, and the exposition promtool accepts."""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest

from flux.k8s import metrics
from flux.k8s.config import OperatorConfig
from support import prerequisites

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def _run(status: dict[str, Any] | None, workflow: str = "etl") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "r1",
            "namespace": "ns",
            "creationTimestamp": "2026-01-01T11:59:00Z",
        },
        "spec": {"workflowRef": {"name": workflow}},
        "status": status,
    }


def _record(**fields: Any) -> dict[str, Any]:
    return {"callId": "fetch#1", "name": "fetch", "state": "Running", **fields}


def test_a_new_run_counts_as_started_once() -> None:
    assert metrics.deltas(_run(None), {"phase": "Pending"}, NOW, None).started
    assert not metrics.deltas(_run({"phase": "Pending"}), {}, NOW, "Pending").started
    assert not metrics.deltas(_run(None), {}, NOW, None).started


def test_a_run_finishes_only_on_a_transition_this_process_saw() -> None:
    status = {"phase": "Succeeded", "startTime": "2026-01-01T11:58:00Z"}
    seen = metrics.deltas(_run(status), {}, NOW, "Running")
    assert seen.finished == "succeeded"
    assert seen.duration == 120.0
    # After an operator restart (never seen) or once already final: not again.
    assert metrics.deltas(_run(status), {}, NOW, None).finished is None
    assert metrics.deltas(_run(status), {}, NOW, "Succeeded").finished is None


def test_a_run_failed_by_the_operator_uses_the_plans_finish_time() -> None:
    status = {"phase": "Running", "startTime": "2026-01-01T11:59:30+00:00"}
    changes = {"phase": "Failed", "finishTime": "2026-01-01T11:59:40+00:00"}
    d = metrics.deltas(_run(status), changes, NOW, "Running")
    assert (d.finished, d.duration) == ("failed", 10.0)


def test_a_failed_attempt_that_is_retried() -> None:
    old = _record(pod="r1-fetch-1", attempts=1, steps=[])
    new = _record(
        state="Retrying",
        pod=None,
        attempts=1,
        lastError={"kind": "code", "message": "boom"},
        steps=[{"type": "TASK_RETRY_STARTED", "value": {}}],
    )
    d = metrics.deltas(_run({"phase": "Running", "tasks": [old]}), {"tasks": [new]}, NOW, "Running")
    assert d.attempts == {("fetch", "failed"): 1}
    assert d.retries == {"fetch": 1}
    assert d.timeouts == {}


def test_a_timed_out_attempt_then_a_fallback_pod() -> None:
    old = _record(pod="r1-fetch-1", steps=[{"type": "TASK_RETRY_STARTED"}])
    new = _record(
        state="FallingBack",
        pod="r1-fetch-2",
        lastError={"kind": "timeout"},
        steps=[
            {"type": "TASK_RETRY_STARTED"},
            {"type": "TASK_RETRY_FAILED"},
            {"type": "TASK_FALLBACK_STARTED"},
        ],
    )
    d = metrics.deltas(_run({"tasks": [old]}), {"tasks": [new]}, NOW, "Running")
    # Steps already counted earlier (the first retry) are not counted again.
    assert d.retries == {}
    assert d.fallbacks == {"fetch": 1}
    assert d.attempts == {("fetch", "timeout"): 1}
    assert d.timeouts == {"fetch": 1}


def test_success_and_a_completed_rollback_both_count_as_succeeded_steps() -> None:
    done = _record(state="Completed", pod=None, output=1)
    d = metrics.deltas(_run({"tasks": [_record(pod="p")]}), {"tasks": [done]}, NOW, "Running")
    assert d.attempts == {("fetch", "succeeded"): 1}
    rolled = _record(state="Failed", pod=None, steps=[{"type": "TASK_ROLLBACK_COMPLETED"}])
    old = _record(state="RollingBack", pod="p")
    d = metrics.deltas(_run({"tasks": [old]}), {"tasks": [rolled]}, NOW, "Running")
    assert d.attempts == {("fetch", "succeeded"): 1}


def test_a_new_task_pod_is_not_an_ended_step() -> None:
    started = _record(pod="r1-fetch-1", attempts=1, podStarts=1)
    d = metrics.deltas(_run({"tasks": []}), {"tasks": [started]}, NOW, "Running")
    assert d.attempts == {} and d.retries == {}


def _pod(name: str, created: str, running: str | None, finished: str | None) -> dict[str, Any]:
    state = {"terminated": {"startedAt": running, "finishedAt": finished}} if finished else {}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"containerStatuses": [{"state": state}]},
    }


def test_stage_latencies_come_from_the_ended_pods_timestamps() -> None:
    old = _record(pod="p1", podStarts=1, startTime="2026-01-01T11:00:00+00:00")
    new = _record(state="Completed", pod=None, podStarts=1, output=1)
    pod = _pod("p1", "2026-01-01T11:00:01Z", "2026-01-01T11:00:04Z", "2026-01-01T11:00:10Z")
    d = metrics.deltas(_run({"tasks": [old]}), {"tasks": [new]}, NOW, "Running", [pod])
    assert d.stages == [("queued", 1.0), ("starting", 3.0), ("running", 6.0)]


def test_a_retry_pod_has_no_queued_stage_and_a_running_pod_no_stages() -> None:
    old = _record(pod="p2", podStarts=2, startTime="2026-01-01T11:00:00+00:00")
    new = _record(state="Completed", pod=None, podStarts=2)
    pod = _pod("p2", "2026-01-01T11:00:20Z", "2026-01-01T11:00:21Z", "2026-01-01T11:00:22Z")
    d = metrics.deltas(_run({"tasks": [old]}), {"tasks": [new]}, NOW, "Running", [pod])
    assert [stage for stage, _ in d.stages] == ["starting", "running"]
    # A pod the operator ends before its container terminated (a timeout): no stages.
    alive = _pod("p2", "2026-01-01T11:00:20Z", None, None)
    d = metrics.deltas(_run({"tasks": [old]}), {"tasks": [new]}, NOW, "Running", [alive])
    assert d.stages == []


def test_driver_restarts_do_not_count_the_first_driver() -> None:
    first = metrics.deltas(_run({}), {"driver": {"starts": 1}}, NOW, "Pending")
    assert first.driver_restarts == 0
    again = metrics.deltas(_run({"driver": {"starts": 1}}), {"driver": {"starts": 2}}, NOW, "x")
    assert again.driver_restarts == 1


def test_a_first_seen_run_and_new_task_records_are_reported() -> None:
    existing = _record(pod="r1-fetch-1")
    added = {"callId": "load#1", "name": "load", "state": "Running", "pod": "r1-load-1"}
    status = {"phase": "Running", "tasks": [existing]}
    d = metrics.deltas(_run(status), {"tasks": [existing, added]}, NOW, "Running")
    assert (d.run, d.first_seen, d.new_tasks) == (("ns", "r1"), False, {"load"})
    # Seen for the first time (a new run, or any run after an operator restart):
    # every task of its records is new to this process.
    d = metrics.deltas(_run(status), {}, NOW, None)
    assert (d.first_seen, d.new_tasks) == (True, {"fetch"})
    d = metrics.deltas(_run(status), {"tasks": [existing, added]}, NOW, None)
    assert d.new_tasks == {"fetch", "load"}


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_counters_start_at_zero_when_the_run_or_task_is_first_seen() -> None:
    """The first timeout, fallback, rollback, retry or finished run is an increase."""
    wf = "zeroed"
    assert _sample("flux_runs_finished_total", workflow=wf, outcome="failed") is None
    metrics.record(metrics.deltas(_run(None, wf), {"phase": "Pending"}, NOW, None))
    assert _sample("flux_runs_started_total", workflow=wf) == 1.0
    for outcome in ("succeeded", "failed", "cancelled"):
        assert _sample("flux_runs_finished_total", workflow=wf, outcome=outcome) == 0.0
    assert _sample("flux_driver_restarts_total", workflow=wf) == 0.0
    assert _sample("flux_task_retries_total", workflow=wf, task="fetch") is None

    created = _record(pod="r1-fetch-1", attempts=1, podStarts=1)
    status = {"phase": "Running", "tasks": []}
    metrics.record(metrics.deltas(_run(status, wf), {"tasks": [created]}, NOW, "Running"))
    for counter in ("retries", "timeouts", "fallbacks", "rollbacks"):
        assert _sample(f"flux_task_{counter}_total", workflow=wf, task="fetch") == 0.0, counter
    for outcome in metrics.TASK_OUTCOMES:
        assert _sample("flux_task_attempts_total", workflow=wf, task="fetch", outcome=outcome) == 0

    timed_out = _record(
        state="FallingBack",
        pod="r1-fetch-2",
        lastError={"kind": "timeout"},
        steps=[{"type": "TASK_FALLBACK_STARTED"}],
    )
    status = {"phase": "Running", "tasks": [created]}
    metrics.record(metrics.deltas(_run(status, wf), {"tasks": [timed_out]}, NOW, "Running"))
    assert _sample("flux_task_timeouts_total", workflow=wf, task="fetch") == 1.0
    assert _sample("flux_task_fallbacks_total", workflow=wf, task="fetch") == 1.0
    assert _sample("flux_task_retries_total", workflow=wf, task="fetch") == 0.0
    assert _sample("flux_task_attempts_total", workflow=wf, task="fetch", outcome="timeout") == 1


def test_a_workflow_seen_before_its_runs_has_its_series_at_zero() -> None:
    metrics.workflow_seen("declared")
    assert _sample("flux_runs_started_total", workflow="declared") == 0.0
    for outcome in ("succeeded", "failed", "cancelled"):
        assert _sample("flux_runs_finished_total", workflow="declared", outcome=outcome) == 0.0
    assert _sample("flux_driver_restarts_total", workflow="declared") == 0.0
    assert _sample("flux_task_pods_pending", workflow="declared") == 0.0
    assert _sample("flux_task_pods_pending_max_age_seconds", workflow="declared") == 0.0
    metrics.record(metrics.deltas(_run(None, "declared"), {"phase": "Pending"}, NOW, None))
    assert _sample("flux_runs_started_total", workflow="declared") == 1.0


def _task_pod(
    name: str, created: str, phase: str, role: str = "task", deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "creationTimestamp": created,
        "labels": {"flux.dev/run": "r1", "flux.dev/role": role},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:59Z"
    return {"metadata": meta, "status": {"phase": phase}}


PODS = [
    _task_pod("r1-a", "2026-01-01T11:58:00Z", "Pending"),
    _task_pod("r1-b", "2026-01-01T11:59:30Z", "Pending"),
    _task_pod("r1-c", "2026-01-01T11:50:00Z", "Running"),
    _task_pod("r1-d", "2026-01-01T11:40:00Z", "Pending", deleting=True),
    _task_pod("r1-driver-1", "2026-01-01T11:30:00Z", "Pending", role="driver"),
]


def test_pending_task_pods_are_those_in_phase_pending_not_drivers_nor_deleted() -> None:
    d = metrics.deltas(_run({"phase": "Running"}), {}, NOW, "Running", PODS)
    assert d.pending == (NOW.timestamp() - 120, NOW.timestamp() - 30)
    # A finished run's pods are on their way out: none is pending any more.
    d = metrics.deltas(_run({"phase": "Running"}), {"phase": "Failed"}, NOW, "Running", PODS)
    assert d.pending == ()


def test_pending_pods_by_workflow_count_and_oldest_age() -> None:
    pending = metrics.PendingPods()
    now = NOW.timestamp()
    pending.set(("ns", "r1"), "etl", (now - 120, now - 30))
    pending.set(("ns", "r2"), "etl", (now - 10,))
    pending.set(("ns", "r3"), "report", (now - 5,))
    assert (pending.count("etl"), pending.max_age("etl", now)) == (3, 120.0)
    pending.set(("ns", "r1"), "etl", ())  # its pods started
    assert (pending.count("etl"), pending.max_age("etl", now)) == (1, 10.0)
    pending.forget(("ns", "r2"))  # deleted
    assert (pending.count("etl"), pending.max_age("etl", now)) == (0, 0.0)
    assert (pending.count("report"), pending.max_age("report", now)) == (1, 5.0)
    assert (pending.count("never"), pending.max_age("never", now)) == (0, 0.0)


def test_pending_pods_not_refreshed_by_a_reconcile_expire() -> None:
    """A reconcile that ends after its run was deleted and forgotten leaves an
    entry no later reconcile refreshes: it must not count forever."""
    clock = [1000.0]
    pending = metrics.PendingPods(stale_after=120, clock=lambda: clock[0])
    now = NOW.timestamp()
    pending.set(("ns", "gone"), "etl", (now - 30,))
    clock[0] += 100
    pending.set(("ns", "alive"), "etl", (now - 10,))
    assert (pending.count("etl"), pending.max_age("etl", now)) == (2, 30.0)
    clock[0] += 30  # "gone" last written 130 s ago; "alive" 30 s ago
    assert (pending.count("etl"), pending.max_age("etl", now)) == (1, 10.0)
    pending.set(("ns", "gone"), "etl", (now - 30,))  # written again: counts again
    assert pending.count("etl") == 2


def test_pending_gauges_follow_reconciles_finishes_and_deletions() -> None:
    wf = "waits"
    status = {"phase": "Running"}
    metrics.record(metrics.deltas(_run(status, wf), {}, NOW, None, PODS))
    assert _sample("flux_task_pods_pending", workflow=wf) == 2.0
    # The age is taken at scrape time, from the oldest Pending pod's creation.
    age = _sample("flux_task_pods_pending_max_age_seconds", workflow=wf)
    assert age is not None and age >= 120.0
    metrics.record(metrics.deltas(_run(status, wf), {"phase": "Succeeded"}, NOW, "Running", PODS))
    assert _sample("flux_task_pods_pending", workflow=wf) == 0.0
    assert _sample("flux_task_pods_pending_max_age_seconds", workflow=wf) == 0.0
    metrics.record(metrics.deltas(_run(status, wf), {}, NOW, "Running", PODS))
    assert _sample("flux_task_pods_pending", workflow=wf) == 2.0
    metrics.forget_run("ns", "r1")
    assert _sample("flux_task_pods_pending", workflow=wf) == 0.0
    assert _sample("flux_task_pods_pending_max_age_seconds", workflow=wf) == 0.0


def test_metrics_port_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUX_METRICS_PORT", raising=False)
    assert OperatorConfig.from_env().metrics_port is None
    monkeypatch.setenv("FLUX_METRICS_PORT", "9090")
    assert OperatorConfig.from_env().metrics_port == 9090


def _exercise() -> bytes:
    metrics.set_build_info()
    metrics.set_active(["Running", "Running", "Paused"])
    old = _record(pod="r1-fetch-1")
    new = _record(
        state="FallingBack",
        pod="r1-fetch-2",
        lastError={"kind": "timeout"},
        steps=[{"type": "TASK_RETRY_STARTED"}, {"type": "TASK_ROLLBACK_STARTED"}],
    )
    status = {"phase": "Running", "tasks": [old], "driver": {"starts": 1}}
    changes = {"phase": "Failed", "tasks": [new], "driver": {"starts": 3}}
    pod = _pod("r1-fetch-1", "2026-01-01T11:59:01Z", "2026-01-01T11:59:02Z", "2026-01-01T11:59:09Z")
    metrics.record(metrics.deltas(_run(status), changes, NOW, "Running", [pod]))
    metrics.record(metrics.deltas(_run(None), {"phase": "Pending"}, NOW, None))
    metrics.RECONCILE_DURATION.labels("ok").observe(0.02)
    metrics.API_REQUESTS.labels("get", "workflowruns").inc()
    metrics.API_ERRORS.labels("get", "workflowruns", "404").inc()
    return generate_latest(REGISTRY)


def test_exposition_has_every_metric_without_run_or_pod_labels() -> None:
    text = _exercise().decode()
    for name in (
        "flux_runs_started_total",
        "flux_runs_finished_total",
        'flux_runs_active{phase="Running"} 2.0',
        "flux_run_duration_seconds_bucket",
        "flux_task_attempts_total",
        "flux_task_retries_total",
        "flux_task_timeouts_total",
        "flux_task_fallbacks_total",
        "flux_task_rollbacks_total",
        "flux_reconcile_duration_seconds_bucket",
        'flux_task_stage_duration_seconds_count{stage="running",workflow="etl"}',
        "flux_kubernetes_api_requests_total",
        "flux_kubernetes_api_errors_total",
        "flux_driver_restarts_total",
        "flux_build_info",
        'flux_task_pods_pending{workflow="etl"} 0.0',
        'flux_task_pods_pending_max_age_seconds{workflow="etl"} 0.0',
    ):
        assert name in text, name
    flux_lines = [line for line in text.splitlines() if line.startswith("flux_")]
    assert not [line for line in flux_lines if 'run="' in line or 'pod="' in line]


def test_promtool_accepts_the_exposition(tmp_path: Any) -> None:
    promtool = prerequisites.promtool()
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=_exercise(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    # promtool reports lint problems on stdout/stderr even with exit code 0 in some versions.
    assert not (done.stdout + done.stderr).strip(), (done.stdout + done.stderr).decode()
