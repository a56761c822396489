"""The cluster as the ``flux kube`` commands reach it, and a WorkflowRun read back
whole for people: what ``flux kube show`` and ``flux kube logs`` print.

``kubectl get fxrun -o yaml`` shows the summary and the newest events; the
archived history, settled task records and large outputs are in compressed
ConfigMaps, which this reads back through :mod:`flux.k8s.runstore`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from flux.events import EventType
from flux.k8s import labels, log_archive, runstore
from flux.k8s.kube import PODS, RUNS, Forbidden, Kube, NoCredentials, NotFound, Unreachable
from flux.k8s.states import Phase

# The namespace of a kubeconfig context that names none, as kubectl uses it.
DEFAULT_NAMESPACE = "default"


class RunNotFoundError(LookupError):
    pass


class UnknownCallError(LookupError):
    """The run has no task call of that id."""


class KubeAccessError(Exception):
    """The cluster cannot be reached or refuses us: a problem of set-up, said in one line."""


@asynccontextmanager
async def connected(kube: Kube | None = None, doing: str = "answer") -> AsyncIterator[Kube]:
    """``kube``, or a client on the cluster the kubeconfig names (closed after);
    within, a missing kubeconfig, an unreachable server and a refusal raise
    :class:`KubeAccessError` saying which (``doing``: what was refused, e.g.
    "show WorkflowRun ns/name")."""
    try:
        if kube is not None:
            yield kube
            return
        missing = _missing_kubeconfig()
        if missing is not None:
            raise KubeAccessError(missing)
        from flux.k8s.kube.http import KubeClient, connect

        client = KubeClient(await connect())
        try:
            yield client
        finally:
            await client.close()
    except NoCredentials as exc:
        raise KubeAccessError(
            f"{exc.message}; set FLUX_KUBECONFIG or KUBECONFIG, or run inside a pod"
        ) from None
    except OSError as exc:
        raise KubeAccessError(f"cannot reach the Kubernetes API server: {exc}") from None
    except Forbidden as exc:
        raise KubeAccessError(f"the Kubernetes API server refused to {doing}: {exc}") from None
    except Unreachable as exc:
        raise KubeAccessError(f"cannot reach the Kubernetes API server: {exc.message}") from None


def default_namespace() -> str:
    """The namespace of the kubeconfig's current context (in a pod: its own), else
    "default", as kubectl chooses."""
    if _missing_kubeconfig() is not None:
        return DEFAULT_NAMESPACE
    from flux.k8s.kube.http import context_namespace

    return context_namespace() or DEFAULT_NAMESPACE


async def read_run(namespace: str, name: str, kube: Kube | None = None) -> dict[str, Any]:
    """The run's summary, whole history, every task record and its output; through
    ``kube``, or the cluster the kubeconfig names."""
    async with connected(kube, f"show WorkflowRun {namespace}/{name}") as reached:
        return await read_run_on(reached, namespace, name)


def _missing_kubeconfig() -> str | None:
    """Why no kubeconfig will be found, or None (the client would log and then fail)."""
    # The client library is imported only to connect, as it takes a second: every
    # `flux` command, `flux run` too, registers the kube commands.
    from flux.k8s.kube.http import KUBECONFIG_ENV

    explicit = os.environ.get(KUBECONFIG_ENV)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not explicit:
        return None
    paths = [explicit] if explicit else []
    paths = paths or [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths = paths or [os.path.expanduser("~/.kube/config")]
    if any(os.path.exists(p) for p in paths):
        return None
    return (
        f"no kubeconfig: {', '.join(paths)} does not exist; "
        f"set {KUBECONFIG_ENV} or KUBECONFIG, or run inside a pod"
    )


async def read_run_on(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    """:func:`read_run` on a connected ``kube``."""
    body = await get_run(kube, namespace, name)
    status = body.get("status") or {}
    return {
        "name": name,
        "namespace": namespace,
        "workflow": ((body.get("spec") or {}).get("workflowRef") or {}).get("name"),
        "phase": status.get("phase", Phase.PENDING),
        "startTime": status.get("startTime"),
        "finishTime": status.get("finishTime"),
        "output": await runstore.load_output(kube, namespace, status),
        "error": status.get("error"),
        "pause": status.get("pause"),
        "history": await runstore.load_history(kube, namespace, status),
        "tasks": await runstore.load_task_records(kube, namespace, status),
    }


async def get_run(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    """The WorkflowRun; :class:`RunNotFoundError` naming it and its namespace if missing."""
    try:
        return await kube.get(RUNS, namespace, name)
    except NotFound:
        raise RunNotFoundError(
            f"WorkflowRun {name!r} not found in namespace {namespace!r}"
        ) from None


async def read_task_logs(
    namespace: str,
    name: str,
    call_id: str | None = None,
    attempt: int | None = None,
    kube: Kube | None = None,
) -> list[dict[str, Any]]:
    """The logs of the run's task pods, in the order they ran, each a
    :class:`~flux.k8s.log_archive.LogEntry` and ``live`` (read from a pod still
    there: ``running`` or not yet cleared away) or kept after its pod went."""
    async with connected(kube, f"show the logs of WorkflowRun {namespace}/{name}") as reached:
        return await _read_task_logs(reached, namespace, name, call_id, attempt)


async def stream_task_log(
    namespace: str, pod: str, write: Callable[[str], object], kube: Kube | None = None
) -> None:
    """A running task pod's log, written as it comes, until the attempt ends."""
    async with connected(kube, f"show the log of pod {namespace}/{pod}") as reached:
        async for text in reached.stream_pod_log(namespace, pod):
            write(text)


async def _read_task_logs(
    kube: Kube, namespace: str, name: str, call_id: str | None, attempt: int | None
) -> list[dict[str, Any]]:
    body = await get_run(kube, namespace, name)
    if call_id is not None:
        history = await runstore.load_history(kube, namespace, body.get("status") or {})
        if not any(
            e.get("type") == EventType.TASK_STARTED and e.get("sourceId") == call_id
            for e in history
        ):
            raise UnknownCallError(f"WorkflowRun {name!r} has no task call {call_id!r}")
    # Pods first: one deleted meanwhile has its log kept by then.
    selector = f"{labels.LABEL_RUN}={name},{labels.LABEL_ROLE}=task"
    pods = (await kube.list(PODS, namespace, label_selector=selector)).get("items") or []
    kept = await runstore.load_task_logs(kube, namespace, name, call_id, attempt)
    found = [{**e, "live": False, "running": False} for e in kept]
    done = {e["pod"] for e in kept}
    gone = False
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        if pod_name in done or not log_archive.has_run(pod):
            continue
        live = log_archive.entry(pod, "")
        if not log_archive.matches(live, call_id, attempt):
            continue
        try:
            text = await kube.pod_log(namespace, pod_name)
        except NotFound:
            gone = True
            continue
        running = live["finished"] is None
        found.append({**log_archive.entry(pod, text), "live": True, "running": running})
    if gone:  # cleared away while we read: kept by now
        again = await runstore.load_task_logs(kube, namespace, name, call_id, attempt)
        found.extend({**e, "live": False, "running": False} for e in again if e["pod"] not in done)
    ordered = log_archive.ordered(found)  # type: ignore[arg-type]
    return [dict(e) for e in ordered]
