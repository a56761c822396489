"""A WorkflowRun read back whole, for people: what ``flux kube show`` prints.

``kubectl get wfr -o yaml`` shows the summary and the newest events; the
archived history, settled task records and large outputs are in compressed
ConfigMaps, which this reads back through :mod:`flux.k8s.runstore`.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from flux.k8s import api, runstore


class RunNotFoundError(LookupError):
    pass


async def read_run(namespace: str, name: str) -> dict[str, Any]:
    """The run's summary, whole history, every task record and its output."""
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
