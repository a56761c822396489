"""The ``flux`` command: run, resume, inspect and cancel local runs, and manage secrets.

Results go to stdout as JSON; everything meant for people (run ids, progress,
errors) goes to stderr, so ``flux run ... > out.json`` keeps a clean file.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from flux import codec
from flux.context import WorkflowExecutionContext
from flux.engine.failures import ErrorInfo
from flux.errors import CodecError, PauseMismatchError, SecretsNotFoundError, WorkflowInputError
from flux.events import ExecutionState
from flux.local import render, runs
from flux.local.claims import RunBusyError
from flux.local.cli_support import (
    CliError,
    ExitCode,
    InputFileOption,
    InputOption,
    JsonFlag,
    ReferenceArgument,
    emit,
    parse_input,
    read_input,
    reserve_stdout,
    say,
    stdout_console,
)
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

ContextJsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the whole run context as JSON.")
]
RunIdArgument = Annotated[str, typer.Argument(metavar="RUN_ID", show_default=False)]


# ----------------------------------------------------------------- commands


@app.command()
def run(
    reference: ReferenceArgument,
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


def kube_commands() -> typer.Typer:
    """The ``flux kube`` sub-app, or without the k8s extra one that says so."""
    try:
        from flux.local.kube_cli import kube_app
    except ImportError as exc:
        missing = f"flux kube needs the k8s extra (pip install 'flux-k8s[k8s]'): {exc}"
        stand_in = typer.Typer(help="Runs on Kubernetes (needs the k8s extra).")

        @stand_in.callback(invoke_without_command=True)
        def needs_k8s() -> None:
            raise CliError(missing)

        return stand_in
    return kube_app


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


app.add_typer(kube_commands(), name="kube")

# Last, so that every command above is registered under `python -m flux.local.cli`.
if __name__ == "__main__":
    main()
