"""A WorkflowRun read back whole, for people: what ``flux kube show`` prints.

``kubectl get wfr -o yaml`` shows the summary and the newest events; the
archived history, settled task records and large outputs are in compressed
ConfigMaps, which this reads back through :mod:`flux.k8s.runstore`.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException

from flux.k8s import api, runstore


class RunNotFoundError(LookupError):
    pass


class KubeAccessError(Exception):
    """The cluster cannot be reached or refuses us: a problem of set-up, said in one line."""


async def read_run(namespace: str, name: str) -> dict[str, Any]:
    """The run's summary, whole history, every task record and its output."""
    missing = _missing_kubeconfig()
    if missing is not None:
        raise KubeAccessError(missing)
    try:
        return await _read_run(namespace, name)
    except ConfigException as exc:
        raise KubeAccessError(
            f"no usable kubeconfig ({exc}); set FLUX_KUBECONFIG or KUBECONFIG, or run inside a pod"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise KubeAccessError(f"cannot reach the Kubernetes API server: {exc}") from None
    except ApiException as exc:
        if exc.status in (401, 403):
            raise KubeAccessError(
                f"the Kubernetes API server refused to show WorkflowRun {namespace}/{name}: "
                f"{api.problem(exc)}"
            ) from None
        raise


def _missing_kubeconfig() -> str | None:
    """Why no kubeconfig will be found, or None (the client would log and then fail)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get(api.KUBECONFIG_ENV):
        return None
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    paths = paths or [os.path.expanduser("~/.kube/config")]
    if any(os.path.exists(p) for p in paths):
        return None
    return (
        f"no kubeconfig: {', '.join(paths)} does not exist; "
        f"set {api.KUBECONFIG_ENV} or KUBECONFIG, or run inside a pod"
    )


async def _read_run(namespace: str, name: str) -> dict[str, Any]:
    async with await api.connect() as client:
        runs, configmaps = api.Runs(client), api.ConfigMaps(client)
        try:
            body = await runs.get(namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                raise RunNotFoundError(
                    f"WorkflowRun {name!r} not found in namespace {namespace!r}"
                ) from None
            raise
        status = body.get("status") or {}
        return {
            "name": name,
            "namespace": namespace,
            "workflow": ((body.get("spec") or {}).get("workflowRef") or {}).get("name"),
            "phase": status.get("phase", "Pending"),
            "startTime": status.get("startTime"),
            "finishTime": status.get("finishTime"),
            "output": await runstore.load_output(configmaps, namespace, status),
            "error": status.get("error"),
            "pause": status.get("pause"),
            "history": await runstore.load_history(configmaps, namespace, status),
            "tasks": await runstore.load_task_records(configmaps, namespace, status),
        }
