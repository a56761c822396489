"""The ``flux`` command: run, resume, inspect and cancel local runs, and manage secrets.

Results go to stdout as JSON; everything meant for people (run ids, progress,
errors) goes to stderr, so ``flux run ... > out.json`` keeps a clean file.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, TextIO, cast

import typer
from rich.console import Console

from flux import codec
from flux.context import WorkflowExecutionContext
from flux.engine.failures import ErrorInfo
from flux.errors import CodecError, PauseMismatchError, SecretsNotFoundError, WorkflowInputError
from flux.events import ExecutionState
from flux.local import render, runs
from flux.local.claims import RunBusyError
from flux.local.executor import LocalExecutor, new_run_id
from flux.local.loader import LoadError, load_from_source, load_workflow, source_of
from flux.local.progress import LiveProgress
from flux.local.secrets import KEY_ENV, SecretKeyError, SecretStore
from flux.local.store import (
    RunNotFound,
    RunRecord,
    Store,
    StoreError,
    flux_home,
    is_broken_database,
)
from flux.masked_output import masked_std_streams
from flux.step_runner import SECRET_ENV_PREFIX
from flux.workflow import Workflow


class ExitCode(IntEnum):
    SUCCEEDED = 0
    FAILED = 1  # the run failed or was cancelled
    USAGE = 2  # bad usage or input; nothing was run
    PAUSED = 3
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


HELP = f"""
Run durable Flux workflows on this machine.

Runs and their histories are kept in $FLUX_HOME/flux.db (default: ./.flux).
Results are printed to stdout as JSON; run ids, progress and errors go to stderr.

Exit codes:

* {ExitCode.SUCCEEDED.value}: the run completed (for cancel: the run is cancelled)
* {ExitCode.FAILED.value}: the run failed or was cancelled
* {ExitCode.USAGE.value}: bad usage or input; nothing was run and nothing stored
* {ExitCode.PAUSED.value}: the run is paused; continue it with `flux resume RUN_ID --input JSON`
* {ExitCode.INTERRUPTED.value}: interrupted (Ctrl-C); continue the run with `flux resume RUN_ID`
"""

app = typer.Typer(
    name="flux",
    help=HELP,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Locals of a failing frame may hold secret values.
    pretty_exceptions_show_locals=False,
)
secrets_app = typer.Typer(
    help="Secrets for tasks, encrypted in the store. Values are never printed.",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")
kube_app = typer.Typer(
    help="Runs on Kubernetes, read whole (archived history and large outputs included). "
    "Needs the k8s extra and a kubeconfig (FLUX_KUBECONFIG or the usual one).",
    no_args_is_help=True,
)
app.add_typer(kube_app, name="kube")


class CliError(Exception):
    """A problem the user can fix, shown as one line without a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE):
        super().__init__(message)
        self.code = code


# Errors caused by what the user asked for: exit code 2 with a one-line message.
USER_ERRORS = (
    CliError,
    LoadError,
    WorkflowInputError,
    CodecError,
    SecretsNotFoundError,
    SecretKeyError,
    RunNotFound,
    runs.ResumeError,
    RunBusyError,
    PauseMismatchError,
    StoreError,
)

# The most runs `flux list` shows at once.
MAX_LIST_LIMIT = 10_000


def main() -> None:
    try:
        app(prog_name="flux")
    except USER_ERRORS as exc:
        say(f"error: {exc}")
        sys.exit(exc.code if isinstance(exc, CliError) else ExitCode.USAGE)
    except Exception as exc:
        # A damaged or unreachable database file is broken state, not a bug here.
        if not is_broken_database(exc):
            raise
        say(f"error: the run store {store_path()} is unusable: {exc}")
        sys.exit(ExitCode.USAGE)


# ------------------------------------------------------------------ options

InputOption = Annotated[
    str | None,
    typer.Option(
        "--input",
        "-i",
        metavar="JSON",
        help="Input as JSON (Flux-tagged values such as datetimes are decoded).",
    ),
]
InputFileOption = Annotated[
    str | None,
    typer.Option(
        "--input-file",
        metavar="PATH",
        help="Read the input JSON from a file, or from stdin with `-` (for large inputs).",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ContextJsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the whole run context as JSON.")
]
RunIdArgument = Annotated[str, typer.Argument(metavar="RUN_ID", show_default=False)]


# ----------------------------------------------------------------- commands


@app.command()
def run(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="FILE:WORKFLOW", help="For example examples/hello.py:hello", show_default=False
        ),
    ],
    input: InputOption = None,
    input_file: InputFileOption = None,
    as_json: ContextJsonFlag = False,
) -> None:
    """Start a run and wait until it finishes or pauses; print its output."""
    text = read_input(input, input_file)
    value = parse_input(text)
    reserve_stdout()
    workflow = load_workflow(reference)
    with Store() as store:
        executor = LocalExecutor(store)
        run_id = new_run_id()
        # Claimed before it exists: no other process can continue it before this one starts.
        with executor.claim(run_id):
            try:
                executor.create_run(workflow, value, source_of(workflow), run_id)
            except WorkflowInputError as exc:
                hint = " (give the input with --input JSON)" if text is None else ""
                raise CliError(f"{exc}{hint}") from None
            say(f"run {run_id} started: workflow {workflow.name}")
            ctx = drive(executor, workflow, run_id)
    raise typer.Exit(report(ctx, as_json))


@app.command()
def resume(
    run_id: RunIdArgument,
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON",
            help="The value `pause` returns (only for a run waiting at a pause point).",
        ),
    ] = None,
    input_file: InputFileOption = None,
    pause: Annotated[
        str | None,
        typer.Option(
            "--pause", metavar="NAME", help="Fail unless the run waits at this pause point."
        ),
    ] = None,
    as_json: ContextJsonFlag = False,
) -> None:
    """Resume a paused run, or continue one that was interrupted (crash, Ctrl-C)."""
    text = read_input(input, input_file)
    value = parse_input(text)
    reserve_stdout()
    with existing_store(run_id) as store:
        executor = LocalExecutor(store)
        # Checked under the claim: no other process can change the run meanwhile.
        with executor.claim(run_id):
            paused = runs.check_resumable(store, run_id, pause)
            if text is not None and not paused:
                raise CliError(
                    f"run {run_id} is not waiting at a pause point, so it takes no --input; "
                    f"continue it with: flux resume {run_id}"
                )
            workflow = workflow_of(store.get_run(run_id))
            say(f"run {run_id} {'resumed' if paused else 'continued'}: workflow {workflow.name}")
            ctx = drive(executor, workflow, run_id, resume=paused, resume_input=value)
    raise typer.Exit(report(ctx, as_json))


@app.command()
def show(run_id: RunIdArgument, as_json: JsonFlag = False) -> None:
    """Show a run: state, input, output or error, and its event timeline."""
    with existing_store(run_id) as store:
        record = store.get_run(run_id)
        view = render.RunView(record, is_interrupted(store, record), store.events(run_id))
    if as_json:
        emit(render.to_json(view.to_dict()))
    else:
        render.print_run(stdout_console(), view)


@app.command("list")
def list_runs(
    limit: Annotated[
        int, typer.Option(help=f"How many runs to show (1 to {MAX_LIST_LIMIT}).")
    ] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List recent runs, newest first."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise CliError(f"--limit must be between 1 and {MAX_LIST_LIMIT}, not {limit}")
    path = store_path()
    views: list[render.RunView] = []
    if path.exists():
        with Store(path) as store:
            views = [render.RunView(r, is_interrupted(store, r)) for r in store.list_runs(limit)]
    if as_json:
        emit(render.to_json([view.brief() for view in views]))
    elif views:
        stdout_console().print(render.runs_table(views))
    else:
        say(f"no runs in {path}")


@app.command()
def cancel(
    run_id: RunIdArgument,
    wait: Annotated[
        float,
        typer.Option(
            min=0, metavar="SECONDS", help="How long to wait for a run executing elsewhere."
        ),
    ] = 10.0,
) -> None:
    """Cancel a run: at once if paused or interrupted, else ask the process executing it."""
    reserve_stdout()
    with existing_store(run_id) as store:
        record = store.get_run(run_id)
        if record.state.is_final:
            raise CliError(
                f"run {run_id} has already finished ({record.state.value}); nothing to cancel"
            )
        state = None
        if not runs.is_executing_elsewhere(store, run_id):
            # RunBusyError: a process started executing it meanwhile; ask that one.
            with contextlib.suppress(RunBusyError):
                state = cancel_here(store, record)
        if state is None:
            store.request_cancel(run_id)
            say(f"asked process {store.owner(run_id) or '(another)'} to cancel run {run_id}")
            state = wait_until_final(store, run_id, wait)
    if state == ExecutionState.CANCELLED:
        say(f"run {run_id} cancelled")
        return
    if state.is_final:
        raise CliError(
            f"run {run_id} finished ({state.value}) before the cancellation took effect",
            ExitCode.FAILED,
        )
    raise CliError(
        f"run {run_id} is still {state.value} {wait:g}s after the cancellation request; "
        f"it stops when its process next checks (see: flux show {run_id})",
        ExitCode.FAILED,
    )


@secrets_app.command("set")
def secrets_set(name: Annotated[str, typer.Argument(metavar="NAME", show_default=False)]) -> None:
    """Store secret NAME, reading its value from stdin (never from the command line)."""
    value = read_secret_value(name)
    with Store() as store:
        try:
            SecretStore(store).set(name, value)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    say(f"secret {name} stored")


@secrets_app.command("list")
def secrets_list() -> None:
    """Names of the secrets tasks can request (values are never shown)."""
    path = store_path()
    stored: list[str] = []
    if path.exists():
        with Store(path) as store:
            stored = SecretStore(store).names()
    from_env = {
        key.removeprefix(SECRET_ENV_PREFIX)
        for key in os.environ
        if key.startswith(SECRET_ENV_PREFIX) and key != KEY_ENV
    }
    for name in sorted(set(stored) | from_env):
        emit(f"{name}  (from ${SECRET_ENV_PREFIX}{name})" if name in from_env else name)


@secrets_app.command("remove")
def secrets_remove(
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False)],
) -> None:
    """Delete stored secret NAME."""
    path = store_path()
    removed = False
    if path.exists():
        with Store(path) as store:
            removed = SecretStore(store).remove(name)
    if not removed:
        raise CliError(f"no stored secret named {name!r}")
    say(f"secret {name} removed")


# ------------------------------------------------------------------ helpers


def say(message: str) -> None:
    """One line for people on stderr."""
    sys.stderr.write(re.sub(r"\s*\n\s*", " ", message.strip()) + "\n")
    sys.stderr.flush()


# Where results go once reserve_stdout() has moved everything else to stderr.
_results: TextIO | None = None


def results() -> TextIO:
    return _results or sys.stdout


def emit(text: str) -> None:
    """A result, on stdout."""
    out = results()
    out.write(text + "\n")
    out.flush()


def reserve_stdout() -> None:
    """Keep stdout for results: what tasks print (or their subprocesses) goes to stderr.

    Done at the file descriptor level, so ``flux run ... > out.json`` stays
    valid JSON whatever user code writes to stdout, from any thread or process.
    """
    global _results
    if _results is not None:
        return
    try:
        if sys.stdout.fileno() != 1:
            return  # stdout was replaced (as in tests): leave it be
        sys.stdout.flush()
        fd = os.dup(1)
    except (OSError, ValueError, AttributeError):
        return  # no usable stdout: nothing to protect
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    os.dup2(2, 1)
    _results = open(fd, "w", encoding=encoding, errors=errors, closefd=True)  # noqa: SIM115


def stdout_console() -> Console:
    # Piped output is for reading later: do not squeeze tables to 80 columns.
    out = results()
    return Console(file=out, highlight=False, width=None if out.isatty() else 200)


def store_path() -> Path:
    return flux_home() / "flux.db"


@contextmanager
def existing_store(run_id: str) -> Iterator[Store]:
    """The store holding ``run_id``; never creates a database just to find it empty."""
    path = store_path()
    if not path.exists():
        raise RunNotFound(f"no run with id {run_id!r}: {path} does not exist (check FLUX_HOME)")
    with Store(path) as store:
        store.get_run(run_id)
        yield store


def read_input(text: str | None, path: str | None) -> str | None:
    """The input JSON text from --input, or from --input-file (``-``: stdin)."""
    if path is None:
        return text
    if text is not None:
        raise CliError("give the input with --input or --input-file, not both")
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        where = "stdin" if path == "-" else path
        raise CliError(f"--input-file: {where} is not valid UTF-8") from None
    except OSError as exc:
        raise CliError(f"--input-file: cannot read {path}: {exc.strerror or exc}") from None


def parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        data = codec.parse_json(text)
    except CodecError as exc:
        raise CliError(f"--input is not valid JSON: {exc}") from None
    try:
        # Plainly: the text is the user's, so it names no class to rebuild; the
        # workflow's declared input type validates it when the run is created.
        return codec.decode(data)
    except CodecError as exc:
        raise CliError(f"--input holds a value Flux cannot decode: {exc}") from None


def workflow_of(record: RunRecord) -> Workflow[Any]:
    try:
        return load_from_source(record.source)
    except LoadError as exc:
        raise CliError(f"cannot load the workflow of run {record.id}: {exc}") from None


def is_interrupted(store: Store, record: RunRecord) -> bool:
    unfinished = record.state in (ExecutionState.CREATED, ExecutionState.RUNNING)
    return unfinished and not runs.is_executing_elsewhere(store, record.id)


def drive(
    executor: LocalExecutor,
    workflow: Workflow[Any],
    run_id: str,
    *,
    resume: bool = False,
    resume_input: Any = None,
) -> WorkflowExecutionContext[Any]:
    """Execute the run until it settles, with live progress when stderr is a terminal."""
    history = executor.store.events(run_id)
    with (
        LiveProgress(workflow.name, history, enabled=sys.stderr.isatty()) as live,
        # What tasks print here is masked with the secrets the run resolves.
        masked_std_streams(executor.redactor),
    ):
        executor.observer = live.observe
        try:
            return asyncio.run(
                executor.execute(workflow, run_id, resume=resume, resume_input=resume_input)
            )
        except KeyboardInterrupt:
            # Every step is committed, so stopping here is like a crash: nothing is lost.
            raise CliError(
                f"interrupted; continue the run with: flux resume {run_id}",
                ExitCode.INTERRUPTED,
            ) from None


def report(ctx: WorkflowExecutionContext[Any], as_json: bool) -> ExitCode:
    """Print the outcome of a settled run and return the exit code for it."""
    run_id = ctx.execution_id
    if as_json:
        emit(ctx.to_json())
    match ctx.state:
        case ExecutionState.COMPLETED:
            if not as_json:
                emit(render.to_json(codec.encode(ctx.output)))
            say(f"run {run_id} completed")
            return ExitCode.SUCCEEDED
        case ExecutionState.PAUSED:
            pause = render.open_pause(ctx.events)
            if not as_json:
                emit(render.to_json(render.pause_output(pause) if pause else None))
            where = repr(pause.name) if pause else "a pause point"
            say(f"run {run_id} paused at {where}; resume with: flux resume {run_id} --input JSON")
            return ExitCode.PAUSED
        case ExecutionState.CANCELLED:
            say(f"run {run_id} was cancelled")
            return ExitCode.FAILED
        case ExecutionState.FAILED:
            return report_failure(run_id, ctx.output)
    say(f"error: run {run_id} stopped while {ctx.state.value}: nothing left could make progress")
    return ExitCode.FAILED


def report_failure(run_id: str, info: Any) -> ExitCode:
    invalid_graph = isinstance(info, dict) and render.find_in_chain(
        cast(ErrorInfo, info),
        lambda level: level.get("type") == "GraphValidationError" and level.get("message"),
    )
    if invalid_graph:
        # The workflow's own definition is wrong: a usage error, not a failed run.
        say(f"error: {invalid_graph}")
        return ExitCode.USAGE
    say(f"error: run {run_id} failed: {render.describe_failure(info)}")
    return ExitCode.FAILED


def cancel_here(store: Store, record: RunRecord) -> ExecutionState:
    workflow = workflow_of(record)
    executor = LocalExecutor(store)
    # Rollbacks run here: what they print is masked as during `flux run`.
    with masked_std_streams(executor.redactor):
        ctx = asyncio.run(executor.cancel_stored(workflow, record.id))
    return ctx.state


def wait_until_final(store: Store, run_id: str, timeout: float) -> ExecutionState:
    deadline = time.monotonic() + timeout
    while True:
        record = store.get_run(run_id)
        if record.state.is_final:
            return record.state
        if not runs.is_executing_elsewhere(store, run_id):
            # Its process stopped without acting on the request: cancel the run here.
            try:
                return cancel_here(store, record)
            except RunBusyError:
                pass  # yet another process took it over: it sees the request too
        if time.monotonic() >= deadline:
            return record.state
        time.sleep(0.2)


def read_secret_value(name: str) -> str:
    if sys.stdin.isatty():
        value = getpass.getpass(f"value of secret {name}: ")
    else:
        try:
            value = sys.stdin.read()
        except UnicodeDecodeError:
            raise CliError("the secret value on stdin is not valid UTF-8") from None
    # Exactly one trailing newline is what `echo` or a file adds; keep anything more.
    value = value.removesuffix("\n").removesuffix("\r") if value.endswith("\n") else value
    if not value:
        raise CliError(
            f"the value of secret {name} is empty; give it on stdin: flux secrets set {name} < FILE"
        )
    return value


@kube_app.command("show")
def kube_show(
    name: Annotated[str, typer.Argument(metavar="RUN", show_default=False)],
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    as_json: JsonFlag = False,
) -> None:
    """Show a WorkflowRun: phase, output or error, its task records and its whole history."""
    try:
        from flux.k8s.inspect import KubeAccessError, RunNotFoundError, read_run
    except ImportError as exc:
        raise CliError(f"flux kube needs the k8s extra (pip install 'flux[k8s]'): {exc}") from None
    try:
        view = asyncio.run(read_run(namespace, name))
    except (RunNotFoundError, KubeAccessError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        emit(render.to_json(view))
    else:
        render.print_kube_run(stdout_console(), view)


@kube_app.command("logs")
def kube_logs(
    name: Annotated[str, typer.Argument(metavar="RUN", show_default=False)],
    task: Annotated[
        str | None,
        typer.Option(
            "--task", metavar="CALL_ID", help="Only this task call (as `kube show` names it)."
        ),
    ] = None,
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, metavar="N", help="Only attempt N.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Stream the running attempt's log until it ends."),
    ] = False,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    as_json: JsonFlag = False,
) -> None:
    """Show the logs of a WorkflowRun's task attempts, kept after their pods are gone
    (the last 64 KiB of each attempt), or live from a pod still running."""
    if follow and as_json:
        raise CliError("--follow streams text; it cannot be combined with --json")
    try:
        from flux.k8s.inspect import (
            KubeAccessError,
            RunNotFoundError,
            UnknownCallError,
            read_task_logs,
            stream_task_log,
        )
        from flux.k8s.kube import NotFound
    except ImportError as exc:
        raise CliError(f"flux kube needs the k8s extra (pip install 'flux[k8s]'): {exc}") from None
    try:
        entries = asyncio.run(read_task_logs(namespace, name, task, attempt))
    except (RunNotFoundError, UnknownCallError, KubeAccessError) as exc:
        raise CliError(str(exc)) from None
    if as_json:
        emit(render.to_json(entries))
        return
    running = [e for e in entries if e["running"]] if follow else []
    if len(running) > 1:
        calls = ", ".join(_log_steps(e) for e in running)
        raise CliError(f"{len(running)} attempts are running ({calls}); choose one with --task")
    for entry in entries:
        if entry in running:
            continue
        emit(_log_header(entry))
        if entry["log"]:
            _write_log(entry["log"])
    if not entries:
        say(f"no task logs for WorkflowRun {name} yet" + (f" (call {task})" if task else ""))
    if running:
        emit(_log_header(running[0]))
        try:
            asyncio.run(stream_task_log(namespace, running[0]["pod"], _write_log))
        except KubeAccessError as exc:
            raise CliError(str(exc)) from None
        except NotFound:
            say(f"pod {running[0]['pod']} is gone; its log is kept: flux kube logs {name}")


def _log_steps(entry: dict[str, Any]) -> str:
    steps = entry["calls"]
    if not steps:
        return str(entry["pod"])
    return ", ".join(f"{s['callId']} {s['step']} {s['attempt']}" for s in steps)


def _log_header(entry: dict[str, Any]) -> str:
    """A line before each attempt's log, as ``tail`` puts before each file's."""
    notes = [f"pod {entry['pod']}"]
    if entry["running"]:
        notes.append("running")
    if entry["truncated"]:
        notes.append("only its last 64 KiB kept")
    if entry["missing"]:
        notes.append(f"no log: {entry['missing']}")
    return f"==> {_log_steps(entry)} ({'; '.join(notes)}) <=="


def _write_log(text: str) -> None:
    out = results()
    out.write(text)
    out.flush()


@app.command()
def ui(
    host: Annotated[
        str, typer.Option(help="Address to listen on; the console has no login, keep it local.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8765,
) -> None:
    """Serve the web console over the runs in $FLUX_HOME (read only)."""
    try:
        from flux.ui.server import CannotServe, is_loopback, serve_local
    except ImportError as exc:
        raise CliError(f"flux ui needs the ui extra (pip install 'flux-k8s[ui]'): {exc}") from None
    if not is_loopback(host):
        say(f"warning: anyone who can reach {host}:{port} can read every run (no login)")
    say(f"console for {store_path()} at http://{host}:{port}/ (Ctrl-C stops it)")
    try:
        serve_local(store_path(), host, port)
    except CannotServe as exc:
        raise CliError(str(exc)) from None


# Last, so that every command above is registered under `python -m flux.local.cli`.
if __name__ == "__main__":
    main()
