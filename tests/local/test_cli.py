"""The ``flux`` command, run as a subprocess: outputs, exit codes and one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from workflows.harness import Flux, reference, trace_lines, wait_for

from flux.events import EventType, ExecutionEvent, ExecutionState
from flux.local.executor import LocalExecutor
from flux.local.loader import load_workflow, source_of
from flux.local.progress import RunProgress
from flux.local.store import Store

GREET = reference("outcomes.py", "greet")
BOOM = reference("outcomes.py", "boom")
APPROVAL = reference("outcomes.py", "approval")
BAD_GRAPH = reference("outcomes.py", "bad_graph")
NEEDS_SECRET = reference("outcomes.py", "needs_secret")
RETRYING = reference("outcomes.py", "retrying")
SLOW = reference("outcomes.py", "slow")
STUCK = reference("outcomes.py", "stuck")


@pytest.fixture
def flux(tmp_path: Path) -> Flux:
    return Flux(home=tmp_path / "home", cwd=tmp_path)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a command that failed on bad input: exactly one line, no traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def last_line(text: str) -> str:
    return text.splitlines()[-1]


# ------------------------------------------------------------------------ run


def test_help_documents_the_exit_codes(flux: Flux) -> None:
    result = flux("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for code in (
        "0: the run completed",
        "1: the run failed",
        "2: bad usage",
        "3: the run is paused",
    ):
        assert code in text


def test_run_prints_the_output_on_stdout_and_the_run_id_on_stderr(flux: Flux) -> None:
    result = flux("run", GREET, "--input", '"World"')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "Hello, World"
    run_id = flux.only_run_id()
    assert f"run {run_id} started" in result.stderr
    assert [run["id"] for run in flux.json("list")] == [run_id]


def test_run_json_prints_the_whole_context(flux: Flux) -> None:
    context = flux.json("run", GREET, "--input", '"World"')
    assert context["state"] == "COMPLETED"
    assert context["output"] == "Hello, World"
    assert context["execution_id"] == flux.only_run_id()
    assert [e["type"] for e in context["events"]] == [
        "WORKFLOW_STARTED",
        "TASK_STARTED",
        "TASK_COMPLETED",
        "WORKFLOW_COMPLETED",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py:greet"], "error: file not found: missing.py"),
        (
            [reference("outcomes.py", "nope")],
            "has no workflow named 'nope'; workflows in it: abandoned, approval",
        ),
        (["no-colon"], "expected FILE:WORKFLOW"),
        (
            [GREET, "--input", "{"],
            "error: --input is not valid JSON: "
            "Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ([GREET, "--input", "hello"], "error: --input is not valid JSON: Expecting value"),
        (
            [GREET, "--input", "5"],
            "error: input of workflow 'greet' is invalid: input: Input should be a valid string",
        ),
        ([GREET], "(give the input with --input JSON)"),
        ([GREET, "--input", '{"$flux": "nope"}'], "unknown Flux value tag 'nope'"),
        ([GREET, "--input", '{"$flux": "datetime", "v": 3}'], "malformed Flux value"),
        ([NEEDS_SECRET], "error: workflow 'needs_secret': missing secret(s): API_TOKEN"),
    ],
    ids=[
        "unknown-file",
        "unknown-workflow",
        "not-a-reference",
        "json-syntax",
        "not-json",
        "wrong-type",
        "missing-input",
        "unknown-tag",
        "malformed-tag",
        "missing-secret",
    ],
)
def test_bad_input_is_one_line_exit_2_and_stores_no_run(
    flux: Flux, args: list[str], message: str
) -> None:
    result = flux("run", *args)
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert result.stdout == ""
    assert flux.stored_run_ids() == []


def test_a_failed_run_exits_1_with_a_one_line_error(flux: Flux) -> None:
    result = flux("run", BOOM)
    assert result.returncode == 1
    run_id = flux.only_run_id()
    assert last_line(result.stderr) == f"error: run {run_id} failed: ValueError: boom"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_invalid_graph_exits_2_with_its_problems(flux: Flux) -> None:
    result = flux("run", BAD_GRAPH, "--input", '"x"')
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        "error: invalid graph 'broken': edge a -> ghost names unknown node 'ghost'; "
        "no end node (call end_with)"
    )


def test_a_branch_abandoned_before_it_started_is_recorded_as_cancelled(flux: Flux) -> None:
    context = flux.json("run", reference("outcomes.py", "abandoned"))
    assert context["output"] == "caught"
    outcomes = {
        e["source_id"]: e["type"] for e in context["events"] if e["type"].startswith("TASK_")
    }
    assert outcomes == {"fail_at_once#0": "TASK_FAILED", "nap#0": "TASK_CANCELLED"}


# --------------------------------------------------------------------- resume


def test_pause_then_resume_with_input(flux: Flux) -> None:
    paused = flux("run", APPROVAL)
    assert paused.returncode == 3
    assert json.loads(paused.stdout) == {"amount": 3}
    run_id = flux.only_run_id()
    assert f"flux resume {run_id} --input JSON" in last_line(paused.stderr)

    resumed = flux("resume", run_id, "--input", '"yes"', "--pause", "approve")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == {"decision": "yes"}
    assert flux.state(run_id) == ExecutionState.COMPLETED


def test_bad_resumes_exit_2_and_leave_the_history_untouched(flux: Flux) -> None:
    flux("run", APPROVAL)
    run_id = flux.only_run_id()
    before = flux.events(run_id)
    cases = {
        ("--pause", "other"): f"error: run {run_id} waits at pause 'approve', not at pause 'other'",
        ("--input", "{oops"): "error: --input is not valid JSON: Expecting property name",
    }
    for args, message in cases.items():
        result = flux("resume", run_id, *args)
        assert result.returncode == 2
        assert one_line_error(result).startswith(message)
    assert flux.events(run_id) == before
    assert flux.state(run_id) == ExecutionState.PAUSED


def test_resume_of_a_finished_run_exits_2(flux: Flux) -> None:
    flux("run", GREET, "--input", '"World"')
    run_id = flux.only_run_id()
    result = flux("resume", run_id)
    assert result.returncode == 2
    assert "has already finished (COMPLETED)" in one_line_error(result)


def test_resume_of_an_unknown_run_exits_2_and_creates_no_store(flux: Flux) -> None:
    result = flux("resume", "nope")
    assert result.returncode == 2
    assert one_line_error(result).startswith("error: no run with id 'nope'")
    assert not flux.db.exists()
    flux("run", GREET, "--input", '"World"')
    result = flux("resume", "nope", "--input", "1")
    assert result.returncode == 2
    assert one_line_error(result).startswith("error: no run with id 'nope'")


def create_run(flux: Flux, workflow_reference: str, input: object) -> str:
    """Register a run as a process would that died before executing it."""
    workflow = load_workflow(workflow_reference)
    with Store(flux.db) as store:
        return LocalExecutor(store).create_run(workflow, input, source_of(workflow))


def test_an_interrupted_run_is_continued_but_takes_no_input(flux: Flux) -> None:
    run_id = create_run(flux, GREET, "World")
    rejected = flux("resume", run_id, "--input", '"x"')
    assert rejected.returncode == 2
    assert "is not waiting at a pause point, so it takes no --input" in one_line_error(rejected)
    mismatch = flux("resume", run_id, "--pause", "approve")
    assert mismatch.returncode == 2
    assert "waits at no pause point, not at pause 'approve'" in one_line_error(mismatch)

    continued = flux("resume", run_id)
    assert continued.returncode == 0, continued.stderr
    assert json.loads(continued.stdout) == "Hello, World"
    assert f"run {run_id} continued" in continued.stderr


# ----------------------------------------------------------------- show, list


def test_show_has_the_timeline_with_attempts_and_errors(flux: Flux, tmp_path: Path) -> None:
    flux("run", RETRYING, "--input", json.dumps(str(tmp_path / "trace")))
    run_id = flux.only_run_id()
    result = flux("show", run_id)
    assert result.returncode == 0
    text = result.stdout
    for expected in (
        run_id,
        "COMPLETED",
        "TASK_RETRY_STARTED",
        "attempt 2 in 0.05s after RuntimeError: attempt 1 fails",
        "attempt 2: RuntimeError: attempt 2 fails",
        "attempt 3 succeeded",
        "flaky#0",
    ):
        assert expected in text

    shown = flux.json("show", run_id)
    assert shown["state"] == "COMPLETED"
    assert shown["output"] == 3
    assert shown["error"] is None
    types = [e["type"] for e in shown["events"]]
    assert types.count("TASK_RETRY_STARTED") == 2


def test_show_of_a_failed_and_of_a_paused_run(flux: Flux) -> None:
    flux("run", BOOM)
    (failed,) = flux.stored_run_ids()
    assert "ValueError: boom" in flux("show", failed).stdout
    assert flux.json("show", failed)["error"]["type"] == "ExecutionError"

    flux("run", APPROVAL)
    paused = next(r for r in flux.stored_run_ids() if r != failed)
    shown = flux.json("show", paused)
    assert shown["pause"] == {"name": "approve", "output": {"amount": 3}}
    assert f"flux resume {paused} --input JSON" in flux("show", paused).stdout


def test_show_of_an_unknown_run_exits_2(flux: Flux) -> None:
    result = flux("show", "nope")
    assert result.returncode == 2
    one_line_error(result)


def test_list_shows_recent_runs(flux: Flux) -> None:
    empty = flux("list")
    assert empty.returncode == 0
    assert "no runs" in empty.stderr
    flux("run", GREET, "--input", '"a"')
    flux("run", BOOM)
    listed = flux.json("list")
    assert [(r["workflow"], r["state"]) for r in listed] == [
        ("boom", "FAILED"),
        ("greet", "COMPLETED"),
    ]
    table = flux("list").stdout
    assert all(r["id"] in table for r in listed)


# --------------------------------------------------------------------- cancel


def test_cancel_a_paused_run(flux: Flux) -> None:
    flux("run", APPROVAL)
    run_id = flux.only_run_id()
    result = flux("cancel", run_id)
    assert result.returncode == 0, result.stderr
    assert flux.state(run_id) == ExecutionState.CANCELLED
    again = flux("cancel", run_id)
    assert again.returncode == 2
    assert "has already finished (CANCELLED); nothing to cancel" in one_line_error(again)
    assert flux("resume", run_id, "--input", "1").returncode == 2


def test_cancel_a_run_executing_in_another_process(flux: Flux, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    runner = flux.start("run", STUCK, "--input", json.dumps(str(trace)), log=tmp_path / "log")
    try:
        wait_for(lambda: trace_lines(trace) == ["started"], what="the task to start")
        run_id = flux.only_run_id()
        result = flux("cancel", run_id)
        assert result.returncode == 0, result.stderr
        assert runner.wait(timeout=30) == 1
    finally:
        runner.kill()
        runner.wait()
    assert flux.state(run_id) == ExecutionState.CANCELLED
    assert trace_lines(trace) == ["started", "rolled back"]
    assert f"run {run_id} was cancelled" in (tmp_path / "log").read_text()


def test_cancel_that_outlasts_its_wait_exits_1(flux: Flux) -> None:
    # A live process that owns the run but never acts on the request.
    run_id = create_run(flux, GREET, "World")
    sleeper = flux.hold_claim(run_id)
    try:
        result = flux("cancel", run_id, "--wait", "0.3")
        assert result.returncode == 1
        assert last_line(result.stderr).startswith(
            f"error: run {run_id} is still CREATED 0.3s after the cancellation request"
        )
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its owner is gone: the run is cancelled right here.
    assert flux("cancel", run_id).returncode == 0
    assert flux.state(run_id) == ExecutionState.CANCELLED


def test_cancel_an_interrupted_run_runs_the_rollback(flux: Flux, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    runner = flux.start("run", STUCK, "--input", json.dumps(str(trace)), log=tmp_path / "log")
    wait_for(lambda: trace_lines(trace) == ["started"], what="the task to start")
    runner.kill()
    runner.wait()
    run_id = flux.only_run_id()
    assert flux.json("show", run_id)["interrupted"] is True

    result = flux("cancel", run_id)
    assert result.returncode == 0, result.stderr
    assert trace_lines(trace) == ["started", "rolled back"]
    types = [e.type for e in flux.events(run_id)]
    assert types[-4:] == [
        EventType.TASK_ROLLBACK_STARTED,
        EventType.TASK_ROLLBACK_COMPLETED,
        EventType.TASK_CANCELLED,
        EventType.WORKFLOW_CANCELLED,
    ]


def test_cancel_of_an_unknown_or_finished_run_exits_2(flux: Flux) -> None:
    flux("run", GREET, "--input", '"a"')
    unknown = flux("cancel", "nope")
    assert unknown.returncode == 2
    one_line_error(unknown)
    finished = flux("cancel", flux.only_run_id())
    assert finished.returncode == 2
    assert "has already finished (COMPLETED)" in one_line_error(finished)


# -------------------------------------------------------------------- secrets


def test_secrets_set_list_use_and_remove_never_show_the_value(flux: Flux) -> None:
    value = "s3cr3t-Value!"
    stored = flux("secrets", "set", "API_TOKEN", stdin=value + "\n")
    assert stored.returncode == 0, stored.stderr
    listed = flux("secrets", "list")
    assert listed.stdout.split() == ["API_TOKEN"]

    result = flux("run", NEEDS_SECRET)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == len(value)  # one trailing newline was stripped
    shown = flux("show", flux.only_run_id(), "--json")
    outputs = stored.stdout + stored.stderr + listed.stdout + result.stdout + result.stderr
    assert value not in outputs + shown.stdout
    assert value.encode() not in flux.db.read_bytes()

    assert flux("secrets", "remove", "API_TOKEN").returncode == 0
    assert flux("secrets", "list").stdout == ""
    missing = flux("secrets", "remove", "API_TOKEN")
    assert missing.returncode == 2
    assert one_line_error(missing) == "error: no stored secret named 'API_TOKEN'"


@pytest.mark.parametrize(
    ("name", "stdin", "message"),
    [
        ("EMPTY", "", "the value of secret EMPTY is empty"),
        ("EMPTY", "\n", "the value of secret EMPTY is empty"),
        ("bad name", "value", "invalid secret name 'bad name'"),
    ],
)
def test_secrets_set_refuses_bad_input(flux: Flux, name: str, stdin: str, message: str) -> None:
    result = flux("secrets", "set", name, stdin=stdin)
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert flux("secrets", "list").stdout == ""


def test_secret_names_from_the_environment_are_listed(flux: Flux) -> None:
    env = {**flux.env(), "FLUX_SECRET_FROM_ENV": "hidden-value"}
    result = subprocess.run(
        flux.command("secrets", "list"), env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[0] == "FROM_ENV  (from $FLUX_SECRET_FROM_ENV)"
    assert "hidden-value" not in result.stdout


# ------------------------------------------------------------------- progress


def test_progress_is_shown_on_a_terminal_and_stdout_stays_json(flux: Flux) -> None:
    controller, terminal = pty.openpty()
    runner = subprocess.Popen(
        flux.command("run", SLOW, "--input", "2"),
        cwd=flux.cwd,
        env=flux.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process exited
            break
        if not chunk:
            break
        shown += chunk
    stdout, _ = runner.communicate(timeout=60)
    os.close(controller)
    assert runner.returncode == 0
    assert json.loads(stdout) == [0, 1]
    screen = shown.decode(errors="replace")
    assert "1 done, 1 running, 0 failed" in screen or "2 done, 0 running" in screen
    assert "completed" in screen


def test_progress_counts_task_calls_but_not_built_ins() -> None:
    now = dt.datetime.now(dt.UTC)

    def event(kind: EventType, call: str, value: object = None) -> ExecutionEvent:
        return ExecutionEvent(kind, call, call.split("#")[0], now, value)

    progress = RunProgress()
    progress.observe(
        [
            event(EventType.TASK_STARTED, "a#0", {"args": [], "kwargs": {}}),
            event(EventType.TASK_STARTED, "b#0", {"args": [], "kwargs": {}}),
            event(EventType.TASK_STARTED, "c#0", {"args": [], "kwargs": {}}),
            event(EventType.TASK_STARTED, "now#0"),
            event(EventType.TASK_COMPLETED, "now#0"),
            event(EventType.TASK_STARTED, "sleep#0", {"until": "x", "seconds": 1}),
            event(EventType.TASK_COMPLETED, "a#0", 1),
            event(EventType.TASK_RETRY_STARTED, "b#0", {"attempt": 2}),
        ]
    )
    assert progress.summary() == "1 done, 2 running (1 retrying), 0 failed"
    progress.observe(
        [
            event(EventType.TASK_RETRY_FAILED, "b#0", {"attempt": 2}),
            event(EventType.TASK_FAILED, "b#0", {}),
            event(EventType.TASK_CANCELLED, "c#0"),
        ]
    )
    assert progress.summary() == "1 done, 0 running, 1 failed, 1 cancelled"


def test_python_m_flux_local_cli_is_the_flux_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flux.local.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "Usage: flux" in result.stdout


# ----------------------------------------------------------------- flux kube


def kube(flux: Flux, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`flux kube show` with only the kubeconfig settings given (no in-cluster account)."""
    base = {
        k: v
        for k, v in flux.env().items()
        if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "FLUX_KUBECONFIG")
    }
    return subprocess.run(
        flux.command("kube", "show", "r1", "-n", "ns"),
        cwd=flux.cwd,
        env={**base, "HOME": str(tmp_path / "nohome"), **env},
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kube_without_a_kubeconfig_is_one_line(flux: Flux, tmp_path: Path) -> None:
    result = kube(flux, tmp_path)
    assert result.returncode == 2
    error = one_line_error(result)
    assert "no kubeconfig: " in error and "/nohome/.kube/config does not exist" in error
    assert "set FLUX_KUBECONFIG or KUBECONFIG" in error


def test_kube_with_a_broken_kubeconfig_is_one_line(flux: Flux, tmp_path: Path) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("apiVersion: v1\nkind: Config\n")
    result = kube(flux, tmp_path, FLUX_KUBECONFIG=str(broken))
    assert result.returncode == 2
    assert "no usable kubeconfig" in one_line_error(result)


def test_kube_with_an_unreachable_api_server_is_one_line(flux: Flux, tmp_path: Path) -> None:
    # Port 1 on loopback: refused at once, no packet leaves the machine.
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\n'
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    result = kube(flux, tmp_path, FLUX_KUBECONFIG=str(config))
    assert result.returncode == 2
    assert "cannot reach the Kubernetes API server" in one_line_error(result)
