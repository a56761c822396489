"""The workflow driver against an in-memory WorkflowRun (no cluster)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import random
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from flux import WorkflowExecutionContext, task, workflow
from flux.engine.instance import WorkflowInstance
from flux.events import ExecutionEvent
from flux.k8s.calls import Call, next_move
from flux.k8s.history import event_from_status
from flux.k8s.pod_view import PodView
from flux.k8s.protocol import Outcome, TaskResult
from flux.runtime.driver import Driver, status_patch, step_time
from flux.tasks import pause
from flux.ui.source import Step
from flux.ui.timeline import build_timeline


@task
def double(x: int) -> int:
    return 2 * x


@workflow
async def pipeline_wf(ctx: WorkflowExecutionContext[int]) -> dict[str, Any]:
    a = await double(ctx.input)
    b = await double(a)
    decision = await pause("approve", output=b)
    return {"b": b, "decision": decision}


class FakeRuns:
    """Applies the driver's JSON patches to one stored WorkflowRun."""

    def __init__(self, body: dict[str, Any]):
        self.body = body
        self.patches = 0

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    async def patch_status(self, namespace: str, name: str, ops: Any) -> dict[str, Any]:
        assert isinstance(ops, list), "the driver appends with JSON patch, never rewrites"
        self.patches += 1
        for op in ops:
            parts = op["path"].strip("/").split("/")
            parent = self.body
            for part in parts[:-1]:
                parent = parent[part]
            last = parts[-1]
            if op["op"] == "test":
                # As the API server's json-patch does: null matches a missing member.
                if parent.get(last) != op["value"]:
                    raise ApiException(status=422, reason=f"test of {op['path']} failed")
            elif op["op"] == "add" and last == "-":
                parent.append(op["value"])
            elif op["op"] == "add":
                parent[last] = op["value"]
            elif op["op"] == "remove":
                del parent[last]
        self.body["metadata"]["resourceVersion"] = str(self.patches)
        return copy.deepcopy(self.body)


def new_run(input: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "r1", "namespace": "ns", "resourceVersion": "0"},
        "spec": {"workflowRef": {"name": "wf"}, "input": input},
    }


def complete_outstanding(runs: FakeRuns) -> list[str]:
    """Play the operator: run every recorded task call and record its outcome."""
    status = runs.body["status"]
    settled = {e["sourceId"] for e in status["history"] if e["type"] == "TASK_COMPLETED"}
    records = status.setdefault("tasks", [])
    done = []
    for event in status["history"]:
        value = event.get("value") or {}
        if event["type"] != "TASK_STARTED" or "task" not in value:
            continue
        if event["sourceId"] in settled or any(r["callId"] == event["sourceId"] for r in records):
            continue
        assert value["task"].endswith(":double")
        records.append(
            {
                "callId": event["sourceId"],
                "name": event["name"],
                "state": "Completed",
                "output": 2 * value["args"][0],
            }
        )
        done.append(event["sourceId"])
    return done


async def step(driver: Driver, runs: FakeRuns, instance: Any) -> None:
    driver.observe(instance, runs.body.get("status") or {})
    await driver.publish(instance, runs.body)


def test_driver_records_calls_delivers_outcomes_and_pauses() -> None:
    runs = FakeRuns(new_run(3))
    driver = Driver(runs, "ns", "r1", pipeline_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        instance = WorkflowInstance(pipeline_wf, "r1", [], clock=_clock, rng=_rng(), input=3)
        instance.start()
        await step(driver, runs, instance)
        assert runs.body["status"]["phase"] == "Running"
        assert complete_outstanding(runs) == ["double#0"]
        await step(driver, runs, instance)
        assert complete_outstanding(runs) == ["double#1"]
        await step(driver, runs, instance)
        status = runs.body["status"]
        assert status["phase"] == "Paused"
        assert status["pause"] == {"name": "approve", "output": 12}

        # A new driver (the old one exited while paused) replays, then resumes.
        status["resume"] = {"input": "ok"}
        replayed = WorkflowInstance(
            pipeline_wf, "r1", history_from_status(status), clock=_clock, rng=_rng()
        )
        replayed.start()
        assert replayed.take_commands() == []
        await step(driver, runs, replayed)

    asyncio.run(scenario())
    status = runs.body["status"]
    assert status["phase"] == "Succeeded"
    assert status["output"] == {"b": 12, "decision": "ok"}
    assert "resume" not in status and "pause" not in status
    ids = [e["id"] for e in status["history"]]
    assert ids == list(range(1, len(ids) + 1))


def test_status_patch_appends_and_is_empty_when_nothing_changed() -> None:
    instance = WorkflowInstance(pipeline_wf, "r1", [], clock=_clock, rng=_rng(), input=1)
    instance.start()
    ops = status_patch(instance, {}, instance.take_events())
    # Only onto a run without status: the operator may have written first.
    assert ops[:2] == [
        {"op": "test", "path": "/status", "value": None},
        {"op": "add", "path": "/status", "value": {}},
    ]
    assert [o["path"] for o in ops if o["path"] == "/status/history/-"]
    runs = FakeRuns(new_run(1))
    asyncio.run(runs.patch_status("ns", "r1", ops))
    assert status_patch(instance, runs.body["status"], []) == []


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


def test_a_spec_input_naming_os_system_is_plain_data(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    runs = FakeRuns(new_run(os_system(target)))
    driver = Driver(runs, "ns", "r1", echo_wf)  # type: ignore[arg-type]
    instance = asyncio.run(driver.begin(runs.body))
    assert instance is not None
    assert not target.exists()
    assert instance.ctx.input == {"command": f"touch {target}"}


class MergingRuns(FakeRuns):
    """Also takes the merge patch that fails a run whose input cannot be read."""

    async def patch_status(self, namespace: str, name: str, ops: Any) -> dict[str, Any]:
        if isinstance(ops, list):
            return await super().patch_status(namespace, name, ops)
        self.body.setdefault("status", {}).update(ops["status"])
        return copy.deepcopy(self.body)


def test_a_malformed_spec_input_fails_the_run_with_one_message() -> None:
    runs = MergingRuns(new_run({"$flux": "bytes", "v": "%%%"}))
    driver = Driver(runs, "ns", "r1", echo_wf)  # type: ignore[arg-type]
    assert asyncio.run(driver.begin(runs.body)) is None
    status = runs.body["status"]
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "WorkflowInputError"  # condition InvalidInput
    assert "spec.input cannot be decoded: " in status["error"]["message"]
    assert "malformed Flux value" in status["error"]["message"]
    assert "history" not in status


def test_resume_inputs_are_plain_and_a_malformed_one_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    runs = FakeRuns(new_run(1))
    driver = Driver(runs, "ns", "r1", echo_wf)  # type: ignore[arg-type]

    async def scenario() -> None:
        instance = await driver.begin(runs.body)
        assert instance is not None
        await step(driver, runs, instance)
        status = runs.body["status"]
        assert status["phase"] == "Paused"
        status["resume"] = {"input": {"$flux": "dataclass", "type": "os:system", "value": {}}}
        await step(driver, runs, instance)
        # Refused: removed, the run still waits at its pause, nothing else written.
        assert "resume" not in runs.body["status"]
        assert runs.body["status"]["phase"] == "Paused"
        runs.body["status"]["resume"] = {"input": os_system(target)}
        await step(driver, runs, instance)

    asyncio.run(scenario())
    assert not target.exists()
    status = runs.body["status"]
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


def test_policy_steps_enter_history_at_the_time_the_operator_recorded_them() -> None:
    runs = FakeRuns(new_run(None))
    driver = Driver(runs, "ns", "r1", flaky_wf)  # type: ignore[arg-type]
    late = _after(100)  # the driver learns of the call's outcome long after

    async def scenario() -> None:
        instance = WorkflowInstance(flaky_wf, "r1", [], clock=lambda: T0, rng=_rng(), input=None)
        instance.start()
        await step(driver, runs, instance)
        status = runs.body["status"]
        [started] = [e for e in status["history"] if e["type"] == "TASK_STARTED"]
        status["tasks"] = [_operator_moves(started)]
        instance._clock = lambda: late
        await step(driver, runs, instance)

    asyncio.run(scenario())
    history = history_from_status(runs.body["status"])
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
    steps = [Step(e.id, e.type.value, e.source_id, e.name, e.time, e.value) for e in history]
    [bar] = build_timeline(steps).bars
    [wait] = [m for m in bar.marks if m.kind == "retry-wait"]
    assert (wait.start, wait.end) == (3.0, 5.0)
    assert bar.attempts == 2


def test_a_step_recorded_without_a_time_enters_history_at_the_driver_clock() -> None:
    runs = FakeRuns(new_run(None))
    driver = Driver(runs, "ns", "r1", flaky_wf)  # type: ignore[arg-type]
    late = _after(100)

    async def scenario() -> None:
        instance = WorkflowInstance(flaky_wf, "r1", [], clock=lambda: T0, rng=_rng(), input=None)
        instance.start()
        await step(driver, runs, instance)
        status = runs.body["status"]
        [started] = [e for e in status["history"] if e["type"] == "TASK_STARTED"]
        record = _operator_moves(started)
        # A record written by an operator from before steps had a time, and one
        # whose time is not a time with a zone: both fall back to the driver's clock.
        record["steps"][0].pop("time")
        record["steps"][1]["time"] = "2026-01-01T00:00:07"
        status["tasks"] = [record]
        instance._clock = lambda: late
        await step(driver, runs, instance)

    asyncio.run(scenario())
    history = history_from_status(runs.body["status"])
    steps = [e for e in history if e.type.value.startswith("TASK_RETRY")]
    assert [e.time for e in steps] == [late, late]


def test_step_time_reads_only_a_zoned_iso_time() -> None:
    assert step_time({"time": "2026-01-01T00:00:03+00:00"}) == _after(3)
    for bad in (None, 3, "", "yesterday", "2026-01-01T00:00:03"):
        assert step_time({"time": bad}) is None
    assert step_time({}) is None
