"""A `flux run` killed with SIGKILL resumes from its history: completed work never reruns."""

from __future__ import annotations

import datetime as dt
import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from workflows.harness import Flux, reference, trace_lines, wait_for

from flux.events import EventType, ExecutionEvent, ExecutionState

SEQUENTIAL = reference("sequential.py", "sequential")
BACKOFF = reference("backoff.py", "backoff")
STEPS = 6


@pytest.fixture
def flux(tmp_path: Path) -> Flux:
    return Flux(home=tmp_path / "home", cwd=tmp_path)


def kill_when(
    flux: Flux, tmp_path: Path, args: list[str], ready: str, condition: Callable[[], object]
) -> str:
    """Start `flux run ARGS`, SIGKILL it once ``condition()`` holds; return the run id."""
    runner = flux.start("run", *args, log=tmp_path / "killed.log")
    try:
        wait_for(condition, timeout=60, what=ready)
    finally:
        runner.kill()
        runner.wait()
    return flux.only_run_id()


def last_line(text: str) -> str:
    return text.splitlines()[-1]


def of_type(events: list[ExecutionEvent], event_type: EventType) -> list[ExecutionEvent]:
    return [e for e in events if e.type == event_type]


def test_killed_run_resumes_without_rerunning_completed_tasks(flux: Flux, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    run_id = kill_when(
        flux,
        tmp_path,
        [SEQUENTIAL, "--input", json.dumps(str(trace))],
        "three steps to start",
        lambda: len(trace_lines(trace)) >= 3,
    )
    traced_at_kill = Counter(int(line) for line in trace_lines(trace))
    at_kill = flux.events(run_id)
    completed = {e.source_id for e in of_type(at_kill, EventType.TASK_COMPLETED)}
    assert 2 <= len(completed) < STEPS
    assert flux.state(run_id) == ExecutionState.RUNNING
    assert flux.json("show", run_id)["interrupted"] is True

    result = flux("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == list(range(STEPS))

    runs = Counter(int(line) for line in trace_lines(trace))
    done_before = {int(call.split("#")[1]) for call in completed}
    for index in range(STEPS):
        # Completed steps never run again; the one in flight at the kill (traced or
        # not yet) runs once more; the rest run once.
        expected = 1 if index in done_before else traced_at_kill[index] + 1
        assert runs[index] == expected, (index, runs, done_before)

    history = flux.events(run_id)
    assert history[: len(at_kill)] == at_kill
    for call in completed:
        assert len([e for e in history if e.source_id == call]) == 2  # started, completed


def test_killed_during_a_retry_backoff_keeps_the_attempt_count(flux: Flux, tmp_path: Path) -> None:
    trace = tmp_path / "trace"

    def retry_scheduled() -> bool:
        run_ids = flux.stored_run_ids()
        return bool(run_ids) and any(
            e.type == EventType.TASK_RETRY_STARTED for e in flux.events(run_ids[0])
        )

    run_id = kill_when(
        flux,
        tmp_path,
        [BACKOFF, "--input", json.dumps(str(trace))],
        "the first retry to be scheduled",
        retry_scheduled,
    )
    assert len(trace_lines(trace)) == 1  # killed while waiting to retry
    (retry,) = of_type(flux.events(run_id), EventType.TASK_RETRY_STARTED)
    assert retry.value["attempt"] == 2
    not_before = dt.datetime.fromisoformat(retry.value["not_before"])

    result = flux("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 3

    attempts = [line.split() for line in trace_lines(trace)]
    assert [int(number) for number, _ in attempts] == [1, 2, 3]
    # The resumed run waited out what was left of the recorded backoff, no less.
    assert float(attempts[1][1]) >= not_before.timestamp() - 0.01
    history = flux.events(run_id)
    assert [e.value["attempt"] for e in of_type(history, EventType.TASK_RETRY_STARTED)] == [2, 3]
    assert [e.value["attempt"] for e in of_type(history, EventType.TASK_RETRY_FAILED)] == [2]
    assert [e.value["attempt"] for e in of_type(history, EventType.TASK_RETRY_COMPLETED)] == [3]
    assert len(of_type(history, EventType.TASK_STARTED)) == 1


def test_ctrl_c_stops_the_run_like_a_crash(flux: Flux, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    log = tmp_path / "interrupted.log"
    runner = flux.start("run", SEQUENTIAL, "--input", json.dumps(str(trace)), log=log)
    try:
        wait_for(lambda: len(trace_lines(trace)) >= 2, timeout=60, what="two steps to start")
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 130
    finally:
        runner.kill()
        runner.wait()
    run_id = flux.only_run_id()
    assert last_line(log.read_text()) == (
        f"error: interrupted; continue the run with: flux resume {run_id}"
    )
    assert not any(e.type == EventType.TASK_CANCELLED for e in flux.events(run_id))

    result = flux("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == list(range(STEPS))
