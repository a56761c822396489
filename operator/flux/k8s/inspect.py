"""The cluster as the ``flux kube`` commands reach it, and a WorkflowRun read back
whole for people: what ``flux kube show`` prints.

``kubectl get wfr -o yaml`` shows the summary and the newest events; the
archived history, settled task records and large outputs are in compressed
ConfigMaps, which this reads back through :mod:`flux.k8s.runstore`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from flux.k8s import runstore
from flux.k8s.kube import RUNS, Forbidden, Kube, NoCredentials, NotFound, Unreachable

# The namespace of a kubeconfig context that names none, as kubectl uses it.
DEFAULT_NAMESPACE = "default"


class RunNotFoundError(LookupError):
    pass


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
        "phase": status.get("phase", "Pending"),
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
