"""The task runner (``python -m flux.runtime.task``) as a pod runs it, in a subprocess.

``FLUX_TASK`` holds the spec, the task module comes from ``FLUX_SOURCE_DIR``
(as an inline Workflow source does in a pod) and the termination message goes
to the file named by ``FLUX_TERMINATION_LOG``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flux import codec
from flux.engine.failures import timeout_info
from flux.k8s.protocol import (
    RESULT_LOG_MARKER,
    TASK_ENV,
    TERMINATION_LOG_ENV,
    TERMINATION_MESSAGE_LIMIT,
    BatchItem,
    BatchResult,
    BatchSpec,
    Outcome,
    Step,
    TaskResult,
    TaskSpec,
    parse_batch_result,
    parse_task_result,
    parse_task_spec,
)

TASKS = """
import asyncio
import sys
import time

from flux import task


class Boom(Exception):
    pass


def undo(n):
    print(f"undo {n}")


def instead(n):
    return -n


@task.with_options(fallback=instead, rollback=undo)
def square(n):
    if n == 13:
        raise Boom(f"unlucky {n}")
    if n == 99:
        return object()  # cannot be encoded
    if n == 42:
        sys.exit(3)
    return n * n


@task
def slow(seconds):
    time.sleep(seconds)
    return seconds


@task
async def slow_async(seconds):
    await asyncio.sleep(seconds)
    return seconds


@task
def big(n):
    return "x" * n


@task.with_options(secret_requests=["API_KEY"])
def secretive(n, secrets):
    return f"{n}:{secrets['API_KEY']}"


@task
def chatty(n):
    print(f"chatty {n}", end="")  # no newline of its own
    return n


not_a_task = 1
"""


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    message: str | None
    seconds: float


@pytest.fixture
def source(tmp_path: Path) -> Path:
    directory = tmp_path / "source"
    directory.mkdir()
    (directory / "batch_tasks.py").write_text(textwrap.dedent(TASKS))
    return directory


def run_runner(source: Path, spec: str, **env: str) -> Ran:
    termination = source.parent / "termination-log"
    termination.unlink(missing_ok=True)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLUX_")},
        TASK_ENV: spec,
        "FLUX_SOURCE_DIR": str(source),
        TERMINATION_LOG_ENV: str(termination),
        **env,
    }
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "flux.runtime.task"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = termination.read_text() if termination.exists() else None
    return Ran(done.returncode, done.stdout, done.stderr, message, time.monotonic() - began)


def item(call_id: str, *args: Any, step: Step = Step.ATTEMPT, attempt: int = 1) -> BatchItem:
    return BatchItem(
        call_id=call_id,
        name=call_id.split("#")[0],
        step=step,
        attempt=attempt,
        positional=codec.encode(list(args)),
    )


def batch(task: str, *items: BatchItem, **fields: Any) -> str:
    spec = BatchSpec(run="run-1", task=f"batch_tasks:{task}", items=list(items), **fields)
    return spec.to_env()


def batch_result(ran: Ran) -> BatchResult:
    assert ran.message is not None, ran.stderr
    return parse_batch_result(ran.message)


# ------------------------------------------------------------------ batches


def test_each_item_runs_and_fails_on_its_own(source: Path) -> None:
    spec = batch(
        "square",
        item("square#0", 3),
        item("square#1", 13),  # raises
        item("square#2", 99),  # result cannot be encoded
        item("square#3", 42),  # sys.exit
        item("square#4", 4, attempt=2),
        item("square#5", 13, step=Step.FALLBACK),
        item("square#6", 13, step=Step.ROLLBACK),
    )
    ran = run_runner(source, spec)
    assert ran.code == 0, ran.stderr
    result = batch_result(ran)
    items = result.items
    assert list(items) == [f"square#{i}" for i in range(7)]
    assert items["square#0"] == TaskResult(outcome=Outcome.COMPLETED, value=9)
    assert items["square#4"] == TaskResult(outcome=Outcome.COMPLETED, value=16)
    assert items["square#5"] == TaskResult(outcome=Outcome.COMPLETED, value=-13)
    assert items["square#6"] == TaskResult(outcome=Outcome.COMPLETED, value=None)
    failed = {k: v.error for k, v in items.items() if v.outcome == Outcome.FAILED}
    assert set(failed) == {"square#1", "square#2", "square#3"}
    assert failed["square#1"] == {
        "type": "Boom",
        "module": "batch_tasks",
        "message": "unlucky 13",
        "kind": "code",
    }
    assert failed["square#2"] is not None
    assert failed["square#2"]["type"] == "CodecError"
    assert "'square' returned a value that cannot be stored" in failed["square#2"]["message"]
    assert failed["square#3"] is not None
    assert failed["square#3"]["type"] == "SystemExit"
    assert "undo 13" in ran.stdout  # the rollback ran


def test_an_item_past_the_timeout_fails_with_a_timeout_and_the_rest_still_run(
    source: Path,
) -> None:
    spec = batch(
        "slow",
        item("slow#0", 0.01),
        item("slow#1", 30),  # past the deadline; its thread is abandoned
        item("slow#2", 0.02),
        item("slow#3", 30, step=Step.FALLBACK),  # no fallback: fails at once, no deadline
        timeout=0.5,
    )
    ran = run_runner(source, spec)
    assert ran.code == 0, ran.stderr
    assert ran.seconds < 15  # the process did not wait for the late item
    items = batch_result(ran).items
    assert items["slow#0"] == TaskResult(outcome=Outcome.COMPLETED, value=0.01)
    assert items["slow#2"] == TaskResult(outcome=Outcome.COMPLETED, value=0.02)
    # What the operator reports for a single task's pod past its deadline.
    assert items["slow#1"] == TaskResult(
        outcome=Outcome.FAILED, error=dict(timeout_info("slow", 0.5))
    )
    assert items["slow#1"].error is not None
    assert items["slow#1"].error["type"] == "ExecutionTimeoutError"
    assert items["slow#1"].error["kind"] == "timeout"
    assert items["slow#3"].error is not None
    assert "has no fallback" in items["slow#3"].error["message"]


def test_async_items_have_the_deadline_too(source: Path) -> None:
    spec = batch("slow_async", item("a#0", 0.01), item("a#1", 30), timeout=0.5)
    ran = run_runner(source, spec)
    assert ran.code == 0, ran.stderr
    assert ran.seconds < 15
    items = batch_result(ran).items
    assert items["a#0"].value == 0.01
    assert items["a#1"].error is not None
    assert items["a#1"].error["type"] == "ExecutionTimeoutError"


def test_a_large_batch_result_goes_to_the_last_log_line(source: Path) -> None:
    spec = batch("big", *(item(f"big#{i}", 1000) for i in range(8)))
    ran = run_runner(source, spec)
    assert ran.code == 0, ran.stderr
    assert ran.message == '{"kind":"batch","inLog":true}'
    small = parse_batch_result(ran.message)
    assert small.in_log and small.items == {}
    last = ran.stdout.splitlines()[-1]
    assert last.startswith(RESULT_LOG_MARKER)
    result = parse_batch_result(last)
    assert len(result.to_message().encode()) > TERMINATION_MESSAGE_LIMIT
    assert [r.value for r in result.items.values()] == ["x" * 1000] * 8


def test_output_of_the_items_does_not_hide_the_result_line(source: Path) -> None:
    spec = batch("chatty", *(item(f"chatty#{i}", "y" * 600) for i in range(8)))
    ran = run_runner(source, spec)
    assert ran.code == 0, ran.stderr
    # The operator looks for the marker at the start of one of the last lines.
    last = ran.stdout.splitlines()[-1]
    assert last.startswith(RESULT_LOG_MARKER)
    assert len(parse_batch_result(last).items) == 8


def test_secrets_reach_attempts_and_a_missing_one_fails_every_attempt(source: Path) -> None:
    spec = batch("secretive", item("s#0", 1), item("s#1", 2), secrets=["API_KEY"])
    with_secret = batch_result(run_runner(source, spec, FLUX_SECRET_API_KEY="k3y"))
    assert [r.value for r in with_secret.items.values()] == ["1:k3y", "2:k3y"]
    without = batch_result(run_runner(source, spec))
    for result in without.items.values():
        assert result.error is not None
        assert result.error["type"] == "SecretsNotFoundError"
        assert "API_KEY" in result.error["message"]


@pytest.mark.parametrize(
    ("task", "message"),
    [("no_such_task", "has no attribute 'no_such_task'"), ("not_a_task", "is not a @task")],
)
def test_a_task_that_cannot_be_loaded_fails_every_item_and_the_runner(
    source: Path, task: str, message: str
) -> None:
    ran = run_runner(source, batch(task, item("t#0", 1), item("t#1", 2)))
    assert ran.code == 1
    items = batch_result(ran).items
    assert list(items) == ["t#0", "t#1"]
    for result in items.values():
        assert result.outcome == Outcome.FAILED
        assert result.error is not None
        assert message in result.error["message"]


def test_an_invalid_batch_spec_fails_the_items_it_names(source: Path) -> None:
    spec = json.dumps({"kind": "batch", "run": "r", "items": [{"callId": "t#0", "name": "t"}]})
    ran = run_runner(source, spec)
    assert ran.code == 2
    [(call_id, result)] = batch_result(ran).items.items()
    assert call_id == "t#0"
    assert result.error is not None
    assert "invalid batch spec" in result.error["message"]
    assert "task" in result.error["message"]


def test_an_empty_batch_reports_no_items(source: Path) -> None:
    ran = run_runner(source, batch("square"))
    assert ran.code == 0, ran.stderr
    assert batch_result(ran) == BatchResult()


# ------------------------------------------------------------ single calls


def test_a_single_call_spec_is_unchanged(source: Path) -> None:
    spec = TaskSpec(
        run="run-1",
        call_id="square#0",
        name="square",
        task="batch_tasks:square",
        positional=[5],
    )
    ran = run_runner(source, json.dumps(spec.to_json()))
    assert ran.code == 0, ran.stderr
    assert ran.message == '{"outcome":"completed","value":25}'
    failing = dataclasses.replace(spec, positional=[13])
    ran = run_runner(source, json.dumps(failing.to_json()))
    assert ran.code == 1
    assert ran.message is not None
    assert parse_task_result(ran.message).error == {
        "type": "Boom",
        "module": "batch_tasks",
        "message": "unlucky 13",
        "kind": "code",
    }


def _single(task: str, *args: Any, **fields: Any) -> str:
    spec = TaskSpec(
        run="run-1",
        call_id=f"{task}#0",
        name=task,
        task=f"batch_tasks:{task}",
        positional=codec.encode(list(args)),
        **fields,
    )
    return json.dumps(spec.to_json())


@pytest.mark.parametrize("task", ["slow", "slow_async"])
def test_a_single_attempt_past_its_timeout_fails_at_its_deadline(source: Path, task: str) -> None:
    # Enforced in the process from the body's start, as embedded: the pod's own
    # deadline counts start-up too, and the kubelet enforces it seconds late, so
    # a body a little past its timeout could report its late result.
    ran = run_runner(source, _single(task, 30, timeout=0.5))
    assert ran.code == 1, ran.stderr
    assert ran.seconds < 15  # the process did not wait for the abandoned body
    assert ran.message is not None
    result = parse_task_result(ran.message)
    assert result == TaskResult(outcome=Outcome.FAILED, error=dict(timeout_info(task, 0.5)))


def test_a_single_attempt_within_its_timeout_completes(source: Path) -> None:
    ran = run_runner(source, _single("slow", 0.01, timeout=5))
    assert ran.code == 0, ran.stderr
    assert ran.message == '{"outcome":"completed","value":0.01}'


# --------------------------------------------------------------- protocol


def test_specs_are_told_apart_by_their_kind() -> None:
    single = TaskSpec(run="r", call_id="a#0", name="a", task="m:a")
    assert parse_task_spec(json.dumps(single.to_json())) == single
    spec = BatchSpec(run="r", task="m:a", items=[item("a#0", 1)], timeout=2)
    data = json.loads(spec.to_env())
    assert data["kind"] == "batch"
    assert data["items"][0] == {
        "callId": "a#0",
        "name": "a",
        "step": "attempt",
        "attempt": 1,
        "positional": [1],
        "keywords": {},
    }
    assert parse_task_spec(spec.to_env()) == spec


def test_batch_results_round_trip_through_their_message() -> None:
    result = BatchResult(
        items={
            "a#0": TaskResult(outcome=Outcome.COMPLETED, value={"ü": [1, None]}),
            "a#1": TaskResult(outcome=Outcome.FAILED, error={"type": "E", "message": "m"}),
        }
    )
    message = result.to_message()
    assert json.loads(message)["kind"] == "batch"
    assert parse_batch_result(message) == result
    assert parse_batch_result(RESULT_LOG_MARKER + message + "\n") == result


def test_a_task_pod_starts_without_pydantic() -> None:
    """Importing pydantic and building its validators was most of a task pod's start-up
    (issue 17): the runner and the pod protocol must not need it."""
    heavy = ("pydantic", "kubernetes_asyncio", "typer")
    probe = (
        "import sys, flux.runtime.task; "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == "[]"
