"""What benchmarks/scale.py makes of its run watch when the watch misses changes."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))

from k8s_bench import Row
from scale_watch import RunTimes, quiet_for, run_times, with_listed

FINISH = "2026-12-03T06:00:00.250000+00:00"


def body(name: str, phase: str | None, finish: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if finish:
        status["finishTime"] = finish
    return {"metadata": {"name": name}, "status": status}


def test_a_final_phase_the_watch_missed_is_taken_from_the_list() -> None:
    rows = [
        Row(10.0, "ADDED", ("a", "<none>")),
        Row(11.0, "MODIFIED", ("a", "Running")),
        Row(10.5, "ADDED", ("b", "<none>")),
        Row(12.0, "MODIFIED", ("b", "Succeeded")),
    ]
    listed = [body("a", "Succeeded", FINISH), body("b", "Succeeded", "2026-12-03T07:00:00Z")]
    runs = with_listed(run_times(rows), listed, listed_at=99.0)
    finish = dt.datetime.fromisoformat(FINISH).timestamp()
    assert runs["a"] == RunTimes(10.0, "Succeeded", finish)
    assert runs["b"] == RunTimes(10.5, "Succeeded", 12.0)  # what the watch saw stays


def test_a_listed_run_without_a_finish_time_or_never_watched_is_dated_by_the_list() -> None:
    listed = [body("a", "Failed"), body("c", "Running")]
    runs = with_listed({"a": RunTimes(1.0, "Pending")}, listed, listed_at=50.0)
    assert runs["a"] == RunTimes(1.0, "Failed", 50.0)
    assert runs["c"] == RunTimes(50.0, "Running", None)


def test_the_watch_is_quiet_from_its_last_change() -> None:
    assert quiet_for([], 100.0) == 0.0
    assert quiet_for([Row(1.0, "ADDED", ("a",)), Row(94.0, "MODIFIED", ("a",))], 100.0) == 6.0


def metrics(pods: float, runs: float, leases: float) -> str:
    return (
        "# TYPE apiserver_watch_events_total counter\n"
        f'apiserver_watch_events_total{{group="",resource="pods",version="v1"}} {pods}\n'
        "apiserver_watch_events_total"
        f'{{group="flux.dev",resource="workflowruns",version="v1alpha1"}} {runs}\n'
        "apiserver_watch_events_total"
        f'{{group="coordination.k8s.io",resource="leases",version="v1"}} {leases}\n'
    )


def test_watch_events_are_counted_by_resource_over_every_watcher() -> None:
    import scale

    moved = scale.watch_events(metrics(100, 50, 7), metrics(160, 50, 9))
    assert moved == {"pods": 60.0}  # runs did not move; leases are not a run's
