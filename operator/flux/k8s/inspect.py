"""A WorkflowRun read back whole, for people: what ``flux kube show`` prints.

``kubectl get fxrun -o yaml`` shows the summary and the newest events; the
archived history, settled task records and large outputs are in compressed
ConfigMaps, which this reads back through :mod:`flux.k8s.runstore`.
"""

from __future__ import annotations

import os
from typing import Any

from flux.k8s import runstore
from flux.k8s.kube import RUNS, Forbidden, Kube, NoCredentials, NotFound, Unreachable
from flux.k8s.kube.http import KUBECONFIG_ENV, KubeClient, connect


class RunNotFoundError(LookupError):
    pass


class KubeAccessError(Exception):
    """The cluster cannot be reached or refuses us: a problem of set-up, said in one line."""


async def read_run(namespace: str, name: str, kube: Kube | None = None) -> dict[str, Any]:
    """The run's summary, whole history, every task record and its output; through
    ``kube``, or the cluster the kubeconfig names."""
    try:
        if kube is not None:
            return await _read_run(kube, namespace, name)
        missing = _missing_kubeconfig()
        if missing is not None:
            raise KubeAccessError(missing)
        client = KubeClient(await connect())
        try:
            return await _read_run(client, namespace, name)
        finally:
            await client.close()
    except NoCredentials as exc:
        raise KubeAccessError(
            f"{exc.message}; set FLUX_KUBECONFIG or KUBECONFIG, or run inside a pod"
        ) from None
    except OSError as exc:
        raise KubeAccessError(f"cannot reach the Kubernetes API server: {exc}") from None
    except Forbidden as exc:
        raise KubeAccessError(
            f"the Kubernetes API server refused to show WorkflowRun {namespace}/{name}: {exc}"
        ) from None
    except Unreachable as exc:
        raise KubeAccessError(f"cannot reach the Kubernetes API server: {exc.message}") from None


def _missing_kubeconfig() -> str | None:
    """Why no kubeconfig will be found, or None (the client would log and then fail)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get(KUBECONFIG_ENV):
        return None
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths = paths or [os.path.expanduser("~/.kube/config")]
    if any(os.path.exists(p) for p in paths):
        return None
    return (
        f"no kubeconfig: {', '.join(paths)} does not exist; "
        f"set {KUBECONFIG_ENV} or KUBECONFIG, or run inside a pod"
    )


async def _read_run(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        body = await kube.get(RUNS, namespace, name)
    except NotFound:
        raise RunNotFoundError(
            f"WorkflowRun {name!r} not found in namespace {namespace!r}"
        ) from None
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
