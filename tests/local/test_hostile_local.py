"""Regression catalogue (issue 12, local half): hostile use and broken state of the local executor.

Each case asserts the message, the exit code (or exception), and that nothing was
written or lost: run count, stored history, database bytes.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from workflows.harness import Flux, reference, trace_lines, wait_for

from flux.events import EventType, ExecutionEvent, ExecutionState
from flux.local import runs
from flux.local.executor import LocalExecutor
from flux.local.loader import load_workflow, source_of
from flux.local.store import Store, StoreError

GREET = reference("outcomes.py", "greet")
HOSTILE = "hostile_local.py"


def ref(name: str) -> str:
    return reference(HOSTILE, name)


@pytest.fixture
def flux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flux:
    home = tmp_path / "home"
    monkeypatch.setenv("FLUX_HOME", str(home))  # the same store for in-process API calls
    return Flux(home=home, cwd=tmp_path)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def run_count(flux: Flux) -> int:
    return len(flux.stored_run_ids())


def create_run(flux: Flux, workflow_reference: str, input: object) -> str:
    """Register a run as a process would that died before executing it."""
    workflow = load_workflow(workflow_reference)
    with Store(flux.db) as store:
        return LocalExecutor(store).create_run(workflow, input, source_of(workflow))


def history(flux: Flux, run_id: str) -> list[dict[str, Any]]:
    return [e.to_dict() for e in flux.events(run_id)]


# ------------------------------------------------------- bad input, broken state


@pytest.mark.parametrize("limit", [str(2**70), "0", "-3"])
def test_list_limit_out_of_range_is_one_line(flux: Flux, limit: str) -> None:
    result = flux("list", "--limit", limit)
    assert result.returncode == 2
    assert one_line_error(result) == f"error: --limit must be between 1 and 10000, not {limit}"
    assert not flux.db.exists()


def test_flux_home_that_is_a_file_is_one_line(flux: Flux) -> None:
    flux.home.write_text("not a folder")
    result = flux("run", GREET, "--input", '"World"')
    assert result.returncode == 2
    line = one_line_error(result)
    assert line.startswith(f"error: cannot use {flux.home} as FLUX_HOME: ")
    assert flux.home.read_text() == "not a folder"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="flux-hostile-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _drop_file_override() -> None:
    """Root writes anywhere: give up the capabilities that let it (kept by nothing else)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        # Dropped from the bounding set, it is gone from the program exec'd next.
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def as_unprivileged(flux: Flux, *args: str) -> subprocess.CompletedProcess[str]:
    """``flux ARGS`` as a user that may not write to folders without write permission."""
    return subprocess.run(
        flux.command(*args),
        cwd=flux.cwd,
        env=flux.env(),
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_drop_file_override,
    )


def test_unwritable_flux_home_is_one_line(shared_dir: Path) -> None:
    home = shared_dir / "home"
    home.mkdir(mode=0o555)
    home.chmod(0o555)
    flux = Flux(home=home, cwd=shared_dir)
    result = as_unprivileged(flux, "run", GREET, "--input", '"World"')
    assert result.returncode == 2, result.stderr
    assert one_line_error(result).startswith(f"error: cannot open the run store {flux.db}")
    assert list(home.iterdir()) == []


def test_read_only_flux_home_with_runs_is_one_line(shared_dir: Path) -> None:
    home = shared_dir / "home"
    flux = Flux(home=home, cwd=shared_dir)
    assert flux("run", GREET, "--input", '"World"').returncode == 0
    (run_id,) = flux.stored_run_ids()
    for path in home.iterdir():
        path.chmod(0o444 if path.is_file() else 0o555)
    home.chmod(0o555)
    before = sorted(p.name for p in home.iterdir())
    try:
        for args in (("run", GREET, "--input", '"again"'), ("resume", run_id)):
            result = as_unprivileged(flux, *args)
            assert result.returncode == 2, result.stderr
            assert "run store" in one_line_error(result)
        assert sorted(p.name for p in home.iterdir()) == before
    finally:
        home.chmod(0o755)
    assert flux.stored_run_ids() == [run_id]


def test_garbage_database_is_one_line_and_left_as_it_is(flux: Flux) -> None:
    flux.home.mkdir()
    garbage = os.urandom(8192)
    flux.db.write_bytes(garbage)
    for args in (("list",), ("run", GREET, "--input", '"World"'), ("show", "x")):
        result = flux(*args)
        assert result.returncode == 2, result.stderr
        line = one_line_error(result)
        assert line == f"error: cannot use the run store {flux.db}: file is not a database"
    assert flux.db.read_bytes() == garbage
    assert sorted(p.name for p in flux.home.iterdir()) == ["flux.db"]


def test_truncated_database_is_one_line_and_left_as_it_is(flux: Flux) -> None:
    for name in ("a", "b", "c"):
        assert flux("run", GREET, "--input", json.dumps(name * 5000)).returncode == 0
    with Store(flux.db) as store:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    truncated = flux.db.read_bytes()[:1000]
    for leftover in flux.home.iterdir():
        if leftover.is_file():
            leftover.unlink()
    flux.db.write_bytes(truncated)
    for args in (("list",), ("run", GREET, "--input", '"World"')):
        result = flux(*args)
        assert result.returncode == 2, result.stderr
        line = one_line_error(result)
        assert line.startswith(f"error: cannot use the run store {flux.db}: "), line
        assert "malformed" in line or "not a database" in line
    assert flux.db.read_bytes() == truncated


def test_bogus_sqlite_sync_setting_is_one_line_and_creates_nothing(flux: Flux) -> None:
    env = {**flux.env(), "FLUX_SQLITE_SYNC": "bogus"}
    result = subprocess.run(
        flux.command("run", GREET, "--input", '"World"'),
        cwd=flux.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert one_line_error(result) == ("error: FLUX_SQLITE_SYNC must be NORMAL or FULL, not 'bogus'")
    assert not flux.home.exists()


def test_a_run_whose_first_event_cannot_be_stored_leaves_no_run(flux: Flux) -> None:
    with Store(flux.db) as store:
        first = ExecutionEvent(
            EventType.WORKFLOW_STARTED, "r1", "greet", dt.datetime.now(dt.UTC), "\ud800", 1
        )
        with pytest.raises(UnicodeEncodeError):
            store.create_run("r1", "greet", {"file": "x"}, first)
        assert store.list_runs() == []
        assert store.events("r1") == []


# ------------------------------------------------------------------ large input


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    blob = "x" * (50 * 1024 * 1024)
    path = tmp_path_factory.mktemp("input") / "big.json"
    path.write_text(json.dumps({"blob": blob}))
    return path, len(blob)


def test_a_50_mb_input_from_a_file(flux: Flux, big_input: tuple[Path, int]) -> None:
    path, length = big_input
    result = flux("run", ref("size"), "--input-file", str(path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == length


def test_a_50_mb_input_from_stdin(flux: Flux, big_input: tuple[Path, int]) -> None:
    path, length = big_input
    result = flux("run", ref("size"), "--input-file", "-", stdin=path.read_text())
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == length


def test_input_and_input_file_together_is_one_line(flux: Flux, tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text('"World"')
    result = flux("run", GREET, "--input", '"x"', "--input-file", str(path))
    assert result.returncode == 2
    assert one_line_error(result) == "error: give the input with --input or --input-file, not both"
    assert not flux.db.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "error: --input-file: cannot read {path}: No such file or directory"),
        (b"\xff\xfe\x00", "error: --input-file: {path} is not valid UTF-8"),
    ],
)
def test_unreadable_input_file_is_one_line(
    flux: Flux, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "in.json"
    if content is not None:
        path.write_bytes(content)
    result = flux("run", GREET, "--input-file", str(path))
    assert result.returncode == 2
    assert one_line_error(result) == message.format(path=path)
    assert not flux.db.exists()


def test_resume_takes_its_input_from_a_file_or_stdin(flux: Flux, tmp_path: Path) -> None:
    assert flux("run", ref("gate")).returncode == 3
    run_id = flux.only_run_id()
    path = tmp_path / "answer.json"
    path.write_text('{"ok": true}')
    both = flux("resume", run_id, "--input", "1", "--input-file", str(path))
    assert both.returncode == 2
    assert one_line_error(both) == "error: give the input with --input or --input-file, not both"
    assert flux.state(run_id) == ExecutionState.PAUSED

    result = flux("resume", run_id, "--input-file", "-", stdin=path.read_text())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"resumed_with": {"ok": True}}


# -------------------------------------------------------------- one owner per run


def test_two_resumes_racing_on_one_run_run_its_task_once(flux: Flux, tmp_path: Path) -> None:
    for attempt in range(10):
        trace = tmp_path / f"trace-{attempt}"
        run_id = create_run(flux, ref("counted"), str(trace))
        racers = [
            subprocess.Popen(
                flux.command("resume", run_id),
                cwd=flux.cwd,
                env=flux.env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outcomes = [(r.wait(timeout=60), *r.communicate()) for r in racers]
        codes = sorted(code for code, _, _ in outcomes)
        assert codes == [0, 2], outcomes
        loser = next(err for code, _, err in outcomes if code == 2)
        assert len(loser.splitlines()) == 1, loser
        assert (
            f"error: run {run_id} is being executed by process " in loser
            or f"error: run {run_id} has already finished (COMPLETED)" in loser
        ), loser
        assert trace_lines(trace) == ["ran"]
        assert flux.state(run_id) == ExecutionState.COMPLETED


def test_a_run_executing_elsewhere_is_refused_to_every_entry_point(
    flux: Flux, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    owner = flux.start(
        "run", ref("counted_long"), "--input", json.dumps(str(trace)), log=tmp_path / "log"
    )
    try:
        wait_for(lambda: trace_lines(trace) == ["ran"], what="the task to start")
        run_id = flux.only_run_id()
        counted_long = load_workflow(ref("counted_long"))
        for attempt in (
            lambda: counted_long.run(execution_id=run_id),
            lambda: counted_long.resume(run_id),
        ):
            with pytest.raises(runs.RunBusyError, match=f"run {run_id} is being executed by"):
                attempt()
        result = flux("resume", run_id)
        assert result.returncode == 2
        assert one_line_error(result).startswith(
            f"error: run {run_id} is being executed by process "
        )
        assert owner.wait(timeout=60) == 0
    finally:
        owner.kill()
        owner.wait()
    assert trace_lines(trace) == ["ran"]
    assert flux.state(run_id) == ExecutionState.COMPLETED


def test_a_killed_owner_is_taken_over(flux: Flux, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    owner = flux.start(
        "run", ref("mark_sleep_mark"), "--input", json.dumps(str(trace)), log=tmp_path / "log"
    )
    try:
        wait_for(lambda: trace_lines(trace) == ["first"], what="the first step")
        run_id = flux.only_run_id()
        refused = flux("resume", run_id)
        assert refused.returncode == 2
        assert "is being executed by process" in one_line_error(refused)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    took_over = flux("resume", run_id)
    assert took_over.returncode == 0, took_over.stderr
    assert json.loads(took_over.stdout) == "done"
    assert trace_lines(trace) == ["first", "second"]


def test_resume_input_for_an_interrupted_run_is_refused_by_the_api_too(
    flux: Flux, tmp_path: Path
) -> None:
    """As `flux resume --input`: a run that waits at no pause point takes no input."""
    trace = tmp_path / "trace"
    owner = flux.start(
        "run", ref("mark_sleep_mark"), "--input", json.dumps(str(trace)), log=tmp_path / "log"
    )
    try:
        wait_for(lambda: trace_lines(trace) == ["first"], what="the first step")
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    run_id = flux.only_run_id()
    before = history(flux, run_id)
    workflow = load_workflow(ref("mark_sleep_mark"))
    with pytest.raises(runs.ResumeError, match="is not waiting at a pause point, so it takes no"):
        workflow.resume(run_id, "ignored")
    assert history(flux, run_id) == before
    assert workflow.resume(run_id).output == "done"


def test_another_workflows_run_is_refused_and_left_untouched(flux: Flux) -> None:
    gate = load_workflow(ref("gate"))
    other = load_workflow(ref("other_gate"))
    paused = gate.run()
    assert paused.is_paused
    before = history(flux, paused.execution_id)
    for attempt in (
        lambda: other.run(execution_id=paused.execution_id),
        lambda: other.resume(paused.execution_id, "x"),
    ):
        with pytest.raises(runs.ResumeError, match="is a run of workflow 'gate', not 'other_gate'"):
            attempt()
    assert history(flux, paused.execution_id) == before
    assert flux.state(paused.execution_id) == ExecutionState.PAUSED
    assert gate.resume(paused.execution_id, "yes").output == {"resumed_with": "yes"}


def test_running_a_paused_run_resumes_it_without_input(flux: Flux) -> None:
    gate = load_workflow(ref("gate"))
    paused = gate.run()
    ctx = gate.run(execution_id=paused.execution_id)
    assert ctx.has_succeeded
    assert ctx.output == {"resumed_with": None}


def test_invalid_input_in_the_api_is_a_failed_context_and_stores_nothing(flux: Flux) -> None:
    greet = load_workflow(GREET)
    ctx = greet.run(123)
    assert ctx.has_failed
    assert ctx.output["type"] == "WorkflowInputError"
    assert ctx.output["message"].startswith("input of workflow 'greet' is invalid")
    assert run_count(flux) == 0


# --------------------------------------------------- tasks cannot hijack the CLI


def test_a_task_calling_sys_exit_fails_the_task_not_the_cli(flux: Flux) -> None:
    result = flux("run", ref("calls_exit"), "--input", "3")
    assert result.returncode == 1
    run_id = flux.only_run_id()
    assert result.stderr.splitlines()[-1] == (
        f"error: run {run_id} failed: TaskExitError: task 'exits' called sys.exit(3)"
    )
    assert flux.state(run_id) == ExecutionState.FAILED
    again = flux("resume", run_id)
    assert again.returncode == 2
    assert one_line_error(again) == (
        f"error: run {run_id} has already finished (FAILED); there is nothing to resume"
    )


def test_sys_exit_in_a_task_goes_to_its_fallback(flux: Flux) -> None:
    result = flux("run", ref("exit_with_fallback"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "fallback ran"


@pytest.mark.parametrize(
    ("workflow", "task", "raised"),
    [
        ("raises_interrupt", "interrupts", "KeyboardInterrupt"),
        ("raises_generator_exit", "closes_generator", "GeneratorExit"),
    ],
)
def test_a_task_raising_a_process_exit_fails_the_task(
    flux: Flux, workflow: str, task: str, raised: str
) -> None:
    result = flux("run", ref(workflow), timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    run_id = flux.only_run_id()
    assert result.stderr.splitlines()[-1] == (
        f"error: run {run_id} failed: TaskExitError: task '{task}' raised {raised}"
    )
    again = flux("resume", run_id)
    assert again.returncode == 2
    assert "has already finished (FAILED)" in one_line_error(again)


@pytest.mark.parametrize(
    ("workflow", "what"),
    [("body_exits", "called sys.exit(3)"), ("body_interrupts", "raised KeyboardInterrupt")],
)
def test_a_workflow_body_ending_the_process_fails_the_run(
    flux: Flux, workflow: str, what: str
) -> None:
    result = flux("run", ref(workflow), timeout=30)
    assert result.returncode == 1
    run_id = flux.only_run_id()
    assert result.stderr.splitlines()[-1] == (
        f"error: run {run_id} failed: TaskExitError: workflow '{workflow}' {what}"
    )
    assert flux.state(run_id) == ExecutionState.FAILED


def test_ctrl_c_during_a_blocking_task_exits_130_at_once_and_resumes(
    flux: Flux, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    log = tmp_path / "log"
    runner = flux.start("run", ref("counted_long"), "--input", json.dumps(str(trace)), log=log)
    try:
        wait_for(lambda: trace_lines(trace) == ["ran"], what="the task to start")
        interrupted = time.monotonic()
        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=30) == 130
        # Not held until the blocking body (5 s) returns.
        assert time.monotonic() - interrupted < 3
    finally:
        runner.kill()
        runner.wait()
    run_id = flux.only_run_id()
    assert log.read_text().splitlines()[-1] == (
        f"error: interrupted; continue the run with: flux resume {run_id}"
    )
    result = flux("resume", run_id)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "done"
    assert trace_lines(trace) == ["ran", "ran"]  # the call in flight runs again


def test_a_lock_folder_that_is_a_file_is_one_line(flux: Flux) -> None:
    flux.home.mkdir()
    (flux.home / "flux.db.locks").write_text("in the way")
    result = flux("run", GREET, "--input", '"World"')
    assert result.returncode == 2
    assert one_line_error(result).startswith("error: cannot lock run ")
    assert run_count(flux) == 0


def test_task_output_never_reaches_the_json_result(flux: Flux) -> None:
    result = flux("run", ref("prints"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "result"
    for line in ("task output on stdout", "task log line", "subprocess output on stdout"):
        assert line in result.stderr


def test_a_timed_out_blocking_task_does_not_hold_the_cli(flux: Flux) -> None:
    started = time.monotonic()
    result = flux("run", ref("times_out"), timeout=40)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "fallback"
    assert time.monotonic() - started < 8


def test_a_timed_out_blocking_task_does_not_hold_the_api(flux: Flux) -> None:
    script = (
        "from flux.local.loader import load_workflow\n"
        f"print(load_workflow({ref('times_out')!r}).run().output)\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=flux.env(),
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "fallback"
    assert time.monotonic() - started < 8


def test_the_store_refuses_to_open_garbage_in_the_api(flux: Flux) -> None:
    flux.home.mkdir()
    flux.db.write_bytes(b"\x00" * 100 + b"garbage" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        Store(flux.db)
