"""The workflow driver against an in-memory WorkflowRun (no cluster)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flux import WorkflowExecutionContext, task, workflow
from flux.engine.instance import WorkflowInstance
from flux.events import ExecutionEvent
from flux.k8s.calls import Call, next_move
from flux.k8s.history import event_from_status
from flux.k8s.kube import CONFIGMAPS, RUNS, Gone
from flux.k8s.pod_view import PodView
from flux.k8s.protocol import Outcome, TaskResult
from flux.runtime.driver import Driver, status_patch, step_time
from flux.tasks import pause
from flux.ui.source import HistoryItem
from flux.ui.timeline import build_timeline
from flux.workflow import Workflow

if TYPE_CHECKING:
    from support.drivers import DriverKube, Runs


async def step(driver: Driver, runs: Runs, instance: Any) -> None:
    body = runs.body()
    driver.observe(instance, body.get("status") or {})
    await driver.publish(instance, body)


def test_driver_records_calls_delivers_outcomes_and_pauses(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.new(3)
    driver = Driver(kube, "ns", "r1", pipeline_wf)

    async def scenario() -> None:
        instance = WorkflowInstance(pipeline_wf, "r1", [], clock=_clock, rng=_rng(), input=3)
        instance.start()
        await step(driver, runs, instance)
        assert runs.status()["phase"] == "Running"
        assert runs.complete_outstanding() == ["double#0"]
        await step(driver, runs, instance)
        assert runs.complete_outstanding() == ["double#1"]
        await step(driver, runs, instance)
        status = runs.status()
        assert status["phase"] == "Paused"
        assert status["pause"] == {"name": "approve", "output": 12}

        # A new driver (the old one exited while paused) replays, then resumes.
        runs.set_status(resume={"input": "ok"})
        replayed = WorkflowInstance(
            pipeline_wf, "r1", history_from_status(status), clock=_clock, rng=_rng()
        )
        replayed.start()
        assert replayed.take_commands() == []
        await step(driver, runs, replayed)

    asyncio.run(scenario())
    status = runs.status()
    assert status["phase"] == "Succeeded"
    assert status["output"] == {"b": 12, "decision": "ok"}
    assert "resume" not in status and "pause" not in status
    ids = [e["id"] for e in status["history"]]
    assert ids == list(range(1, len(ids) + 1))


def test_status_patch_appends_and_is_empty_when_nothing_changed(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    instance = WorkflowInstance(pipeline_wf, "r1", [], clock=_clock, rng=_rng(), input=1)
    instance.start()
    ops = status_patch(instance, {}, instance.take_events())
    # Only onto a run without status: the operator may have written first.
    assert ops.ops[:2] == [
        {"op": "test", "path": "/status", "value": None},
        {"op": "add", "path": "/status", "value": {}},
    ]
    assert [o["path"] for o in ops if o["path"] == "/status/history/-"]
    runs.new(1)
    asyncio.run(kube.patch(RUNS, "ns", "r1", ops, status=True))
    assert status_patch(instance, runs.status(), []) == []


def history_from_status(status: dict[str, Any]) -> list[ExecutionEvent]:
    """The run's inline history, as the driver replays it."""
    return [event_from_status(e) for e in status.get("history") or []]


def _clock() -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _rng() -> random.Random:
    return random.Random(7)


# ------------------------------------------- hostile values (issue 12, item 1)


@workflow
async def echo_wf(ctx: WorkflowExecutionContext[Any]) -> Any:
    decision = await pause("approve", output=None)
    return {"input": ctx.input, "decision": decision}


def os_system(target: Path) -> dict[str, Any]:
    return {"$flux": "dataclass", "type": "os:system", "v": {"command": f"touch {target}"}}


def test_a_spec_input_naming_os_system_is_plain_data(
    tmp_path: Path, kube: DriverKube, runs: Runs
) -> None:
    target = tmp_path / "pwned"
    body = runs.new(os_system(target))
    driver = Driver(kube, "ns", "r1", echo_wf)
    instance = asyncio.run(driver.begin(body))
    assert instance is not None
    assert not target.exists()
    assert instance.ctx.input == {"command": f"touch {target}"}


def test_a_malformed_spec_input_fails_the_run_with_one_message(
    kube: DriverKube, runs: Runs
) -> None:
    kube.merge_allowed = True  # failing a run whose input cannot be read
    body = runs.new({"$flux": "bytes", "v": "%%%"})
    driver = Driver(kube, "ns", "r1", echo_wf)
    assert asyncio.run(driver.begin(body)) is None
    status = runs.status()
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "WorkflowInputError"  # condition InvalidInput
    assert "spec.input cannot be decoded: " in status["error"]["message"]
    assert "malformed Flux value" in status["error"]["message"]
    assert "history" not in status


def test_resume_inputs_are_plain_and_a_malformed_one_is_refused(
    tmp_path: Path, kube: DriverKube, runs: Runs
) -> None:
    target = tmp_path / "pwned"
    body = runs.new(1)
    driver = Driver(kube, "ns", "r1", echo_wf)

    async def scenario() -> None:
        instance = await driver.begin(body)
        assert instance is not None
        await step(driver, runs, instance)
        assert runs.status()["phase"] == "Paused"
        runs.set_status(resume={"input": {"$flux": "dataclass", "type": "os:system", "value": {}}})
        await step(driver, runs, instance)
        # Refused: removed, the run still waits at its pause, nothing else written.
        assert "resume" not in runs.status()
        assert runs.status()["phase"] == "Paused"
        runs.set_status(resume={"input": os_system(target)})
        await step(driver, runs, instance)

    asyncio.run(scenario())
    assert not target.exists()
    status = runs.status()
    assert status["phase"] == "Succeeded"
    assert status["output"] == {"input": 1, "decision": {"command": f"touch {target}"}}


# ------------------------------ policy steps keep the time the operator saw them


@task.with_options(retry_max_attempts=1, retry_delay=2)
def flaky() -> str:
    return "ok"


@workflow
async def flaky_wf(ctx: WorkflowExecutionContext[None]) -> str:
    return await flaky()


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _after(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _operator_moves(started: dict[str, Any]) -> dict[str, Any]:
    """Play the operator's own decisions: attempt 1's pod fails at 3 s, attempt 2
    starts after the 2 s wait and its pod succeeds at 7 s."""
    call = Call.from_event(started)
    limits = {"pending_timeout": 60.0, "infrastructure_retries": 1, "timeout_backstop": 5.0}
    failed = TaskResult(outcome=Outcome.FAILED, error={"type": "ValueError", "message": "no"})
    done = TaskResult(outcome=Outcome.COMPLETED, value="ok")

    def pod(name: str, phase: str, result: TaskResult) -> PodView:
        return PodView(name, phase, exit_code=int(phase == "Failed"), message=result.to_message())

    move = next_move(call, None, None, _after(1), **limits)
    assert move is not None
    record = {**move.record, "pod": "p1"}
    move = next_move(call, record, pod("p1", "Failed", failed), _after(3), **limits)
    assert move is not None and move.record["state"] == "Retrying"
    move = next_move(call, move.record, None, _after(5), **limits)
    assert move is not None and move.start is not None
    record = {**move.record, "pod": "p2"}
    move = next_move(call, record, pod("p2", "Succeeded", done), _after(7), **limits)
    assert move is not None and move.record["state"] == "Completed"
    return move.record


def test_policy_steps_enter_history_at_the_time_the_operator_recorded_them(
    kube: DriverKube, runs: Runs
) -> None:
    runs.new(None)
    driver = Driver(kube, "ns", "r1", flaky_wf)
    late = _after(100)  # the driver learns of the call's outcome long after

    async def scenario() -> None:
        instance = WorkflowInstance(flaky_wf, "r1", [], clock=lambda: T0, rng=_rng(), input=None)
        instance.start()
        await step(driver, runs, instance)
        status = runs.status()
        [started] = [e for e in status["history"] if e["type"] == "TASK_STARTED"]
        runs.set_status(tasks=[_operator_moves(started)])
        instance._clock = lambda: late
        await step(driver, runs, instance)

    asyncio.run(scenario())
    history = history_from_status(runs.status())
    times = {e.type.value: e.time for e in history if e.source_id == "flaky#0"}
    assert times["TASK_RETRY_STARTED"] == _after(3)
    assert times["TASK_RETRY_COMPLETED"] == _after(7)
    assert times["TASK_COMPLETED"] == late  # the outcome: when the driver delivered it
    # Times are data: a replay of this history agrees with it and has nothing to do.
    replayed = WorkflowInstance(flaky_wf, "r1", history, clock=lambda: late, rng=_rng())
    replayed.start()
    assert replayed.state.value == "COMPLETED" and replayed.take_commands() == []
    assert replayed.ctx.output == "ok"

    # The console draws the retry wait between the two attempts, not at the bar's end.
    steps = [HistoryItem(e.id, e.type.value, e.source_id, e.name, e.time, e.value) for e in history]
    [bar] = build_timeline(steps).bars
    [wait] = [m for m in bar.marks if m.kind == "retry-wait"]
    assert (wait.start, wait.end) == (3.0, 5.0)
    assert bar.attempts == 2


def test_a_step_recorded_without_a_time_enters_history_at_the_driver_clock(
    kube: DriverKube, runs: Runs
) -> None:
    runs.new(None)
    driver = Driver(kube, "ns", "r1", flaky_wf)
    late = _after(100)

    async def scenario() -> None:
        instance = WorkflowInstance(flaky_wf, "r1", [], clock=lambda: T0, rng=_rng(), input=None)
        instance.start()
        await step(driver, runs, instance)
        status = runs.status()
        [started] = [e for e in status["history"] if e["type"] == "TASK_STARTED"]
        record = _operator_moves(started)
        # A record written by an operator from before steps had a time, and one
        # whose time is not a time with a zone: both fall back to the driver's clock.
        record["steps"][0].pop("time")
        record["steps"][1]["time"] = "2026-01-01T00:00:07"
        runs.set_status(tasks=[record])
        instance._clock = lambda: late
        await step(driver, runs, instance)

    asyncio.run(scenario())
    history = history_from_status(runs.status())
    steps = [e for e in history if e.type.value.startswith("TASK_RETRY")]
    assert [e.time for e in steps] == [late, late]


def test_step_time_reads_only_a_zoned_iso_time() -> None:
    assert step_time({"time": "2026-01-01T00:00:03+00:00"}) == _after(3)
    for bad in (None, 3, "", "yesterday", "2026-01-01T00:00:03"):
        assert step_time({"time": bad}) is None
    assert step_time({}) is None


# ------------------------------------------------ the driver's watch of its run


async def _play_operator(runs: Runs, until: str) -> None:
    while runs.body().get("status", {}).get("phase") != until:
        if runs.body().get("status", {}).get("history"):
            runs.complete_outstanding()
        await asyncio.sleep(0.01)


def test_the_driver_follows_its_run_and_keeps_going_after_a_410(
    kube: DriverKube, runs: Runs, pipeline_wf: Workflow[Any]
) -> None:
    runs.new(3)
    kube.fail("watch", RUNS, Gone("too old resource version"))
    driver = Driver(kube, "ns", "r1", pipeline_wf, linger=5)

    async def scenario() -> int:
        driving = asyncio.create_task(driver.run())
        await asyncio.wait_for(_play_operator(runs, "Paused"), 10)
        return await asyncio.wait_for(driving, 10)  # paused: the driver exits

    assert asyncio.run(scenario()) == 0
    assert runs.status()["pause"] == {"name": "approve", "output": 12}
    assert kube.count("list", RUNS) == 1  # the run as it was after the 410
    assert kube.count("watch", RUNS) >= 2


def test_a_driver_whose_run_is_deleted_exits(kube: DriverKube, runs: Runs) -> None:
    body = runs.new(1)

    async def scenario() -> None:
        waiting = asyncio.create_task(Driver(kube, "ns", "r1", echo_wf).wait_for_change(body, 5))
        await asyncio.sleep(0.01)
        await kube.delete(RUNS, "ns", "r1")
        await waiting

    with pytest.raises(SystemExit) as exited:
        asyncio.run(scenario())
    assert exited.value.code == 0


def test_a_driver_waits_no_longer_than_it_was_told(kube: DriverKube, runs: Runs) -> None:
    body = runs.new(1)
    driver = Driver(kube, "ns", "r1", echo_wf)
    assert asyncio.run(driver.wait_for_change(body, 0.05)) is None
    runs.set_status(phase="Running")
    changed = asyncio.run(driver.wait_for_change(body, 5))
    assert changed is not None and changed["status"] == {"phase": "Running"}


def test_one_watch_serves_every_wait_and_a_change_already_held_is_skipped(
    kube: DriverKube, runs: Runs
) -> None:
    """A watch opened anew for each wait cost every step its set-up and a new
    connection for the write after it: the driver keeps one."""
    body = runs.new(1)
    driver = Driver(kube, "ns", "r1", echo_wf)

    async def scenario() -> list[str]:
        held, phases = body, []
        for phase in ("Pending", "Running", "Paused"):
            waiting = asyncio.create_task(driver.wait_for_change(held, 5))
            await asyncio.sleep(0.01)
            runs.set_status(phase=phase)
            held = await waiting or held
            phases.append(held["status"]["phase"])
        # A change the driver already holds (its own write's echo) is no news.
        written = runs.set_status(phase="Running")
        await asyncio.sleep(0.01)  # the watch has queued it
        assert await driver.wait_for_change(written, 0.05) is None
        assert driver.changes is not None
        driver.changes.close()
        return phases

    assert asyncio.run(scenario()) == ["Pending", "Running", "Paused"]
    assert kube.count("watch", RUNS) == 1


def test_an_input_from_a_missing_configmap_fails_the_run(kube: DriverKube, runs: Runs) -> None:
    kube.merge_allowed = True
    body = runs.add(
        {
            "metadata": {"name": "r1", "namespace": "ns"},
            "spec": {
                "workflowRef": {"name": "wf"},
                "inputFrom": {"configMapKeyRef": {"name": "big-input", "key": "input"}},
            },
        }
    )
    assert asyncio.run(Driver(kube, "ns", "r1", echo_wf).begin(body)) is None
    assert runs.status()["phase"] == "Failed"
    assert "spec.inputFrom: ConfigMap 'big-input' not found" in runs.status()["error"]["message"]
    kube.put(
        CONFIGMAPS,
        {"metadata": {"name": "big-input", "namespace": "ns"}, "data": {"input": '"hello"'}},
    )
    instance = asyncio.run(Driver(kube, "ns", "r1", echo_wf).begin(body))
    assert instance is not None and instance.ctx.input == "hello"
