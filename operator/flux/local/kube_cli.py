"""``flux kube``: runs on a cluster from the terminal, with the look, flags, exit
codes and one-line errors of the local commands.

Every command is a few requests through the :class:`~flux.k8s.kube.Kube` seam
(:mod:`flux.local.kube_runs`), each of which docs/cli.md gives as kubectl too;
what is printed is decided in :mod:`flux.local.kube_views`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, TypeVar

import typer

from flux import codec
from flux.errors import CodecError
from flux.k8s.archive import ArchiveUnreadable
from flux.k8s.inspect import (
    KubeAccessError,
    RunNotFoundError,
    UnknownCallError,
    connected,
    default_namespace,
    read_run_on,
    read_task_logs,
    stream_task_log,
)
from flux.k8s.kube import Invalid, Kube, KubeError, NotFound
from flux.k8s.kube.client import Body
from flux.k8s.states import Phase
from flux.local import kube_runs, kube_views, render
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
    results,
    say,
    stdout_console,
)
from flux.local.kube_source import SourceError, read_reference
from flux.local.progress import LiveProgress

T = TypeVar("T")

kube_app = typer.Typer(
    help="Runs on Kubernetes: submit, follow, resume, cancel, retry, delete and read them "
    "whole. Needs the k8s extra and a kubeconfig (FLUX_KUBECONFIG or the usual one); the "
    "namespace is the kubeconfig context's unless -n says otherwise.",
    no_args_is_help=True,
)

# How the commands reach the cluster; tests give an in-memory one.
open_cluster: Callable[[Kube | None, str], AbstractAsyncContextManager[Kube]] = connected

NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NS",
        help="The namespace (default: the kubeconfig context's, else default).",
        show_default=False,
    ),
]
RunArgument = Annotated[str, typer.Argument(metavar="RUN", show_default=False)]
WatchFlag = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Follow the run until it ends or pauses; exit as it did."),
]
RunJsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the whole run (history included) as JSON.")
]


@kube_app.command("run")
def kube_run(
    reference: ReferenceArgument,
    input: InputOption = None,
    input_file: InputFileOption = None,
    watch: WatchFlag = False,
    namespace: NamespaceOption = None,
    as_json: RunJsonFlag = False,
) -> None:
    """Ship FILE as a Workflow's inline source (created or updated) and start a run of it."""
    value = encoded_input(read_input(input, input_file))
    try:
        shipped = read_reference(reference)
    except SourceError as exc:
        raise CliError(str(exc)) from None
    ns = namespace or default_namespace()
    if watch:
        reserve_stdout()

    async def submit(kube: Kube) -> tuple[str, int]:
        done = await kube_runs.apply_workflow(kube, ns, shipped)
        if done != "unchanged":
            say(f"workflow {ns}/{shipped.name} {done} from {reference}")
        if done == "updated" and (busy := await kube_runs.unfinished_runs(kube, ns, shipped.name)):
            say(
                f"{len(busy)} unfinished run(s) of {shipped.name} ({', '.join(busy[:3])}"
                f"{', ...' if len(busy) > 3 else ''}) keep the revision they started with; "
                "new runs use the new source"
            )
        name = await kube_runs.create_run(kube, ns, shipped.name, value)
        say(f"run {name} started: workflow {shipped.name} (namespace {ns})")
        return name, (await follow(kube, ns, name, as_json) if watch else ExitCode.SUCCEEDED)

    name, code = on_cluster(submit, f"create Workflows and WorkflowRuns in namespace {ns}")
    if not watch:
        emit(render.to_json({"name": name, "namespace": ns}) if as_json else name)
        say(f"follow it with: flux kube watch {name} -n {ns}")
    raise typer.Exit(code)


@kube_app.command("list")
def kube_list(
    namespace: NamespaceOption = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Runs of every namespace.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the runs, newest first, and the next time of each Workflow schedule."""
    ns = None if all_namespaces else namespace or default_namespace()

    async def read(kube: Kube) -> tuple[list[Body], list[Body]]:
        runs = await kube_runs.list_runs(kube, ns)
        return runs, await kube_runs.list_workflows(kube, ns)

    runs, workflows = on_cluster(read, f"list WorkflowRuns in {_where(ns)}")
    now = dt.datetime.now(dt.UTC)
    rows, schedules = kube_views.run_rows(runs), kube_views.schedule_rows(workflows)
    if as_json:
        emit(
            render.to_json(
                {
                    "runs": [row.to_dict(now) for row in rows],
                    "schedules": [row.to_dict() for row in schedules],
                }
            )
        )
        return
    console = stdout_console()
    if rows:
        console.print(kube_views.runs_table(rows, now, namespaces=ns is None))
    else:
        say(f"no runs in {_where(ns)}")
    if schedules:
        console.print(kube_views.schedules_table(schedules, now))


@kube_app.command("watch")
def kube_watch(
    run: RunArgument, namespace: NamespaceOption = None, as_json: RunJsonFlag = False
) -> None:
    """Follow a run with live progress until it ends or pauses; exit as it did."""
    ns = namespace or default_namespace()
    reserve_stdout()
    code = on_cluster(lambda kube: follow(kube, ns, run, as_json), f"watch WorkflowRun {ns}/{run}")
    raise typer.Exit(code)


@kube_app.command("show")
def kube_show(
    run: RunArgument, namespace: NamespaceOption = None, as_json: JsonFlag = False
) -> None:
    """Show a run: phase, output or error, its task records and its whole history."""
    ns = namespace or default_namespace()
    view = on_cluster(lambda kube: read_run_on(kube, ns, run), f"show WorkflowRun {ns}/{run}")
    if as_json:
        emit(render.to_json(view))
    else:
        render.print_kube_run(stdout_console(), view)


@kube_app.command("logs")
def kube_logs(
    run: RunArgument,
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
    namespace: NamespaceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the logs of a run's task attempts, kept after their pods are gone (the
    last 64 KiB of each attempt), or live from a pod still running."""
    if follow and as_json:
        raise CliError("--follow streams text; it cannot be combined with --json")
    ns = namespace or default_namespace()
    entries = on_cluster(
        lambda kube: read_task_logs(ns, run, task, attempt, kube),
        f"show the logs of WorkflowRun {ns}/{run}",
    )
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
        say(f"no task logs for WorkflowRun {run} yet" + (f" (call {task})" if task else ""))
    if running:
        pod = running[0]["pod"]
        emit(_log_header(running[0]))

        async def stream(kube: Kube) -> None:
            try:
                await stream_task_log(ns, pod, _write_log, kube)
            except NotFound:
                say(f"pod {pod} is gone; its log is kept: flux kube logs {run}")

        on_cluster(stream, f"show the log of pod {ns}/{pod}")


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


@kube_app.command("resume")
def kube_resume(
    run: RunArgument,
    input: Annotated[
        str | None,
        typer.Option(
            "--input", "-i", metavar="JSON", help="The value `pause` returns (default null)."
        ),
    ] = None,
    input_file: InputFileOption = None,
    watch: WatchFlag = False,
    namespace: NamespaceOption = None,
    as_json: RunJsonFlag = False,
) -> None:
    """Resume a Paused run: set its status.resume (the driver hands the input to pause)."""
    value = encoded_input(read_input(input, input_file))
    ns = namespace or default_namespace()
    if watch:
        reserve_stdout()

    async def resume(kube: Kube) -> int:
        await kube_runs.request_resume(kube, ns, run, value)
        say(f"run {run} resume requested")
        return await follow(kube, ns, run, as_json) if watch else ExitCode.SUCCEEDED

    raise typer.Exit(on_cluster(resume, f"resume WorkflowRun {ns}/{run}"))


@kube_app.command("cancel")
def kube_cancel(
    run: RunArgument, watch: WatchFlag = False, namespace: NamespaceOption = None
) -> None:
    """Ask the operator to cancel a run (spec.cancel): tasks in flight stop, rollbacks run."""
    ns = namespace or default_namespace()

    async def cancel(kube: Kube) -> int:
        await kube_runs.request_cancel(kube, ns, run)
        if not watch:
            say(f"run {run} cancel requested; follow it with: flux kube watch {run} -n {ns}")
            return ExitCode.SUCCEEDED
        say(f"run {run} cancel requested; waiting for its rollbacks")
        settled = await kube_runs.watch_run(kube, ns, run, lambda events: None)
        phase = kube_runs.phase_of(settled)
        if phase == Phase.CANCELLED:
            say(f"run {run} cancelled")
            return ExitCode.SUCCEEDED
        say(f"error: run {run} ended {phase} before the cancellation took effect")
        return ExitCode.FAILED

    raise typer.Exit(on_cluster(cancel, f"cancel WorkflowRun {ns}/{run}"))


@kube_app.command("retry")
def kube_retry(
    run: RunArgument,
    watch: WatchFlag = False,
    namespace: NamespaceOption = None,
    as_json: RunJsonFlag = False,
) -> None:
    """Start a new run, RUN-retry-N, of the same Workflow with the same input."""
    ns = namespace or default_namespace()
    if watch:
        reserve_stdout()

    async def retry(kube: Kube) -> tuple[str, int]:
        name = await kube_runs.retry_run(kube, ns, run)
        say(f"run {name} started: a retry of {run}")
        return name, (await follow(kube, ns, name, as_json) if watch else ExitCode.SUCCEEDED)

    name, code = on_cluster(retry, f"retry WorkflowRun {ns}/{run}")
    if not watch:
        emit(render.to_json({"name": name, "namespace": ns}) if as_json else name)
    raise typer.Exit(code)


@kube_app.command("delete")
def kube_delete(run: RunArgument, namespace: NamespaceOption = None) -> None:
    """Delete a run; its pods and ConfigMaps go with it. A run in progress just stops:
    no rollbacks run (flux kube cancel runs them)."""
    ns = namespace or default_namespace()
    on_cluster(lambda kube: kube_runs.delete_run(kube, ns, run), f"delete WorkflowRun {ns}/{run}")
    say(f"run {run} deleted")


# ------------------------------------------------------------------ helpers


def on_cluster(action: Callable[[Kube], Awaitable[T]], doing: str) -> T:
    """``action`` on the cluster, every way it can fail said in one line."""

    async def go() -> T:
        async with open_cluster(None, doing) as kube:
            return await action(kube)

    try:
        return asyncio.run(go())
    except (KubeAccessError, RunNotFoundError, UnknownCallError, kube_runs.RequestRefused) as exc:
        raise CliError(str(exc)) from None
    except ArchiveUnreadable as exc:
        raise CliError(f"cannot {doing}: part of the run is lost: {exc}") from None
    except Invalid as exc:
        raise CliError(f"the Kubernetes API server refused to {doing}: {exc}") from None
    except KubeError as exc:
        raise CliError(f"the Kubernetes API server failed to {doing}: {exc}") from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; the run goes on in the cluster (flux kube watch RUN follows it)",
            ExitCode.INTERRUPTED,
        ) from None


async def follow(kube: Kube, namespace: str, name: str, as_json: bool) -> ExitCode:
    """Live progress of the run until it settles; prints its outcome as ``flux run``
    does (output or pause output on stdout, the rest on stderr)."""
    with LiveProgress(name, [], enabled=sys.stderr.isatty()) as live:
        run = await kube_runs.watch_run(kube, namespace, name, live.observe)
    phase = kube_runs.phase_of(run)
    if as_json:
        emit(render.to_json(await read_run_on(kube, namespace, name)))
    elif phase == Phase.SUCCEEDED:
        emit(render.to_json(await kube_runs.output_of(kube, namespace, run)))
    elif phase == Phase.PAUSED:
        emit(render.to_json(((run.get("status") or {}).get("pause") or {}).get("output")))
    line = kube_views.outcome_line(run, namespace)
    say(line)
    return kube_views.exit_code(phase)


def encoded_input(text: str | None) -> Any:
    """``--input`` as the API stores it: checked as ``flux run`` checks it, then
    codec-encoded (ints past int64 tagged, which the API server could not keep)."""
    value = parse_input(text)
    try:
        return None if text is None else codec.encode(value)
    except CodecError as exc:
        raise CliError(f"--input holds a value Flux cannot store: {exc}") from None


def _where(namespace: str | None) -> str:
    return f"namespace {namespace}" if namespace else "all namespaces"
