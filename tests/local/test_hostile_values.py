"""Issue 12, items 1 and 4: values from users and tasks never run code, and values the
store cannot take fail the task (or are refused with one line), never the machinery.

Each test is one hostile case, through the CLI or the Python API, asserting the
message, the exit code or state, and that nothing was run, written or lost.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest
from workflows import hostile
from workflows.harness import Flux, reference

from flux import WorkflowExecutionContext, task, workflow
from flux.events import EventType, ExecutionEvent, ExecutionState
from flux.local.loader import source_of
from flux.local.store import Store

HELLO = str(Path(__file__).parents[2] / "examples" / "hello.py") + ":hello"
TASK_RETURNS = reference("hostile.py", "task_returns")
TASK_FALLS_BACK = reference("hostile.py", "task_falls_back")
WORKFLOW_RETURNS = reference("hostile.py", "workflow_returns")
ECHO = reference("hostile.py", "echo")


@pytest.fixture
def flux(tmp_path: Path) -> Flux:
    return Flux(home=tmp_path / "home", cwd=tmp_path)


@pytest.fixture
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "api-home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    return home


def os_system(target: Path) -> dict[str, Any]:
    """The tagged value that made decoding call ``os.system("touch TARGET")``."""
    return {"$flux": "dataclass", "type": "os:system", "v": {"command": f"touch {target}"}}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def failure_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line of a run that failed (after the 'run ... started' line)."""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


# ------------------------------------------------- no code runs from data


def test_cli_input_naming_os_system_runs_nothing(flux: Flux, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    result = flux("run", HELLO, "--input", json.dumps(os_system(target)))
    assert not target.exists()
    assert result.returncode == 2
    assert "input of workflow 'hello' is invalid" in one_line_error(result)
    assert flux.stored_run_ids() == []


def test_cli_input_naming_os_system_stays_plain_data(flux: Flux, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    started = flux("run", ECHO, "--input", json.dumps(os_system(target)))
    assert started.returncode == 3  # paused: the task ran with the plain fields
    run_id = flux.only_run_id()
    assert not target.exists()
    result = flux("resume", run_id, "--input", json.dumps(os_system(target)), "--json")
    assert not target.exists()
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)["output"]
    assert output == {
        "input": {"command": f"touch {target}"},
        "task_saw": "dict",
        "resumed": {"command": f"touch {target}"},
    }


def test_history_naming_os_system_runs_nothing_on_replay(flux_home: Path, tmp_path: Path) -> None:
    """A WORKFLOW_STARTED written by someone else (a CR's spec.input, an old store)."""
    target = tmp_path / "pwned"

    @workflow
    async def replayed(ctx: WorkflowExecutionContext[Any]) -> Any:
        return ctx.input

    with Store() as store:
        first = ExecutionEvent(
            EventType.WORKFLOW_STARTED, "r1", replayed.name, dt.datetime.now(dt.UTC),
            os_system(target), 1,
        )  # fmt: skip
        store.create_run("r1", replayed.name, source_of(replayed), first)
    ctx = replayed.run(execution_id="r1")
    assert not target.exists()
    assert ctx.has_succeeded
    assert ctx.output == {"command": f"touch {target}"}


def test_task_result_naming_os_system_runs_nothing_on_replay(
    flux_home: Path, tmp_path: Path
) -> None:
    """A task outcome as a task pod reports it: raw JSON, read back by the engine."""
    target = tmp_path / "pwned"

    @task
    def fetch() -> Any:
        return "never run: history has the outcome"

    @workflow
    async def reads(ctx: WorkflowExecutionContext[Any]) -> Any:
        return await fetch()

    now = dt.datetime.now(dt.UTC)
    with Store() as store:
        store.create_run(
            "r2", reads.name, source_of(reads),
            ExecutionEvent(EventType.WORKFLOW_STARTED, "r2", reads.name, now, None, 1),
        )  # fmt: skip
        store.append(
            "r2",
            [
                ExecutionEvent(
                    EventType.TASK_STARTED, "fetch#0", "fetch", now, {"args": [], "kwargs": {}}, 2
                ),
                ExecutionEvent(
                    EventType.TASK_COMPLETED, "fetch#0", "fetch", now, os_system(target), 3
                ),
            ],
            ExecutionState.RUNNING,
        )  # fmt: skip
    ctx = reads.run(execution_id="r2")
    assert not target.exists()
    assert ctx.output == {"command": f"touch {target}"}


def test_a_task_argument_shaped_like_a_tag_is_plain_data(flux_home: Path, tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    seen: list[Any] = []

    @task
    def take(value: Any) -> None:
        seen.append(value)

    @workflow
    async def passes(ctx: WorkflowExecutionContext[Any]) -> None:
        await take(ctx.input)

    assert passes.run(os_system(target)).has_succeeded
    assert not target.exists()
    assert seen == [os_system(target)]  # the user's dict, unchanged


# ------------------------------------------------ malformed and oversized input


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param(
            '{"$flux": "bytes", "v": "%%%"}',
            "--input holds a value Flux cannot decode: malformed Flux value",
            id="bytes-not-base64",
        ),
        pytest.param(
            '{"$flux": "dataclass", "type": "os:system", "value": {}}',
            "malformed Flux value (tag 'dataclass'): expected the keys",
            id="dataclass-value-key",
        ),
        pytest.param(
            "9" * 5000,
            "--input is not valid JSON: it holds an int with more than 4300 digits",
            id="5000-digit-int",
        ),
        pytest.param(
            "[" * 900 + "]" * 900,
            "--input holds a value Flux cannot decode: a value nested deeper than 100 levels",
            id="900-deep",
        ),
        pytest.param(
            "[" * 30_000 + "]" * 30_000,
            "--input is not valid JSON: it is nested deeper than 100 levels",
            id="30000-deep",
        ),
        pytest.param('"\\ud800"', "lone surrogate '\\ud800' at index 0", id="lone-surrogate"),
        pytest.param("NaN", "--input is not valid JSON: NaN is not JSON", id="nan-literal"),
    ],
)
def test_bad_cli_input_is_one_line_and_nothing_is_stored(
    flux: Flux, given: str, message: str
) -> None:
    result = flux("run", HELLO, "--input", given)
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert flux.stored_run_ids() == []


def test_an_unstorable_python_input_is_refused_and_nothing_is_stored(flux_home: Path) -> None:
    # As for an input that fails validation: a failed context, nothing stored.
    ctx = hostile.echo.run(math.factorial(2000))
    assert ctx.has_failed
    assert ctx.output["type"] == "CodecError"
    assert "an int with more than 4300 digits" in ctx.output["message"]
    with Store() as store:
        assert store.list_runs() == []


# ------------------------------------- task results the store cannot take


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("surrogate", "a str holding the lone surrogate '\\udcff' at index 5 cannot be stored"),
        ("factorial", "an int with more than 4300 digits cannot be stored"),
        ("deep", "a value nested deeper than 100 levels (at a builtins:list) cannot be stored"),
    ],
)
def test_a_task_result_the_store_cannot_take_fails_the_task(
    flux: Flux, kind: str, message: str
) -> None:
    result = flux("run", TASK_RETURNS, "--input", json.dumps(kind), timeout=60)
    assert result.returncode == 1
    line = failure_line(result)
    assert "task 'produce' returned a value that cannot be stored" in line
    assert message in line
    run_id = flux.only_run_id()
    assert flux.state(run_id) == ExecutionState.FAILED
    shown = flux("show", run_id, "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["state"] == "FAILED"


@pytest.mark.parametrize("kind", ["surrogate", "factorial", "deep"])
def test_a_task_result_the_store_cannot_take_goes_to_the_fallback(flux: Flux, kind: str) -> None:
    result = flux("run", TASK_FALLS_BACK, "--input", json.dumps(kind), timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == f"fallback for {kind}"
    events = flux.events(flux.only_run_id())
    assert [e.type for e in events if e.type == EventType.TASK_FALLBACK_STARTED]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("surrogate", "lone surrogate '\\udcff'"),
        ("factorial", "an int with more than 4300 digits"),
        ("deep", "a value nested deeper than 100 levels"),
    ],
)
def test_a_workflow_output_the_store_cannot_take_fails_the_run(
    flux: Flux, kind: str, message: str
) -> None:
    result = flux("run", WORKFLOW_RETURNS, "--input", json.dumps(kind), timeout=60)
    assert result.returncode == 1
    line = failure_line(result)
    assert "workflow 'workflow_returns' output" in line and message in line
    assert flux.state(flux.only_run_id()) == ExecutionState.FAILED


def test_an_error_message_with_a_lone_surrogate_is_recorded_escaped(flux: Flux) -> None:
    result = flux("run", reference("hostile.py", "task_error_with_surrogate"), timeout=60)
    assert result.returncode == 1
    assert "FileNotFoundError: [Errno 2] No such file or directory: 'name-\\udcff.txt'" in (
        failure_line(result)
    )
    run_id = flux.only_run_id()
    assert flux.state(run_id) == ExecutionState.FAILED
    shown = json.loads(flux("show", run_id, "--json").stdout)
    assert "name-\\udcff.txt" in shown["error"]["message"]


def test_a_nan_result_is_stored_and_printed_as_valid_json(flux: Flux) -> None:
    result = flux("run", TASK_RETURNS, "--input", '"nan"')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout, parse_constant=_no_constants) == {"$flux": "float", "v": "nan"}
    shown = flux("show", flux.only_run_id(), "--json")
    assert "NaN" not in shown.stdout
    assert json.loads(shown.stdout, parse_constant=_no_constants)["output"] == {
        "$flux": "float",
        "v": "nan",
    }


def test_a_nan_result_comes_back_as_nan_in_python(flux_home: Path) -> None:
    ctx = hostile.task_returns.run("nan")
    assert ctx.has_succeeded
    assert math.isnan(ctx.output)
    assert json.loads(ctx.to_json(), parse_constant=_no_constants)["output"]["v"] == "nan"


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


# ----------------------------------------------- resume inputs the store cannot take


def test_an_unstorable_resume_input_changes_nothing(flux_home: Path) -> None:
    from flux.errors import CodecError

    paused = hostile.echo.run("in")
    assert paused.is_paused
    with Store() as store:
        before = store.events(paused.execution_id)
    with pytest.raises(CodecError, match="lone surrogate"):
        hostile.echo.resume(paused.execution_id, "\udcff")
    with Store() as store:
        assert store.events(paused.execution_id) == before
        assert store.get_run(paused.execution_id).state == ExecutionState.PAUSED
    done = hostile.echo.resume(paused.execution_id, "ok")
    assert done.output == {"input": "in", "task_saw": "str", "resumed": "ok"}


def test_a_bad_cli_resume_input_is_one_line_and_the_run_stays_paused(flux: Flux) -> None:
    assert flux("run", ECHO, "--input", '"in"').returncode == 3
    run_id = flux.only_run_id()
    before = flux.events(run_id)
    for given in ('"\\ud800"', '{"$flux": "bytes", "v": "%%%"}', "[" * 900 + "]" * 900):
        result = flux("resume", run_id, "--input", given)
        assert result.returncode == 2
        assert "--input holds a value Flux cannot decode" in one_line_error(result)
    assert flux.events(run_id) == before
    assert flux.state(run_id) == ExecutionState.PAUSED
