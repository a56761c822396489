"""Talking to the Kubernetes API: names of our resources and the few calls we make.

Every write goes through the async client (kubernetes-asyncio) so that no
handler ever blocks the event loop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from flux.k8s import labels as _labels
from flux.k8s.kube.resources import GROUP as GROUP
from flux.k8s.kube.resources import VERSION as VERSION
from flux.k8s.kube.versions import newer as newer

WORKFLOWS = "workflows"
RUNS = "workflowruns"
MERGE_PATCH = "application/merge-patch+json"
# Named in flux.k8s.labels (pure: the decisions read them without this client);
# kept here for the modules that read them as api.LABEL_*.
LABEL_RUN = _labels.LABEL_RUN
LABEL_ROLE = _labels.LABEL_ROLE
LABEL_CALL = _labels.LABEL_CALL
LABEL_WORKFLOW = _labels.LABEL_WORKFLOW
ANNOTATION_CALL_ID = _labels.ANNOTATION_CALL_ID
ANNOTATION_STEP = _labels.ANNOTATION_STEP
ANNOTATION_ATTEMPT = _labels.ANNOTATION_ATTEMPT
ANNOTATION_BATCH_SIZE = _labels.ANNOTATION_BATCH_SIZE

KUBECONFIG_ENV = "FLUX_KUBECONFIG"


async def connect() -> client.ApiClient:
    """In a pod, its service account; elsewhere FLUX_KUBECONFIG or the usual kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get(KUBECONFIG_ENV):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=os.environ.get(KUBECONFIG_ENV))
    return client.ApiClient()


class Runs:
    """WorkflowRun reads and status writes."""

    def __init__(self, api: client.ApiClient):
        # Typed as Any: we send and read raw JSON dicts, not the client's model classes.
        self.custom: Any = client.CustomObjectsApi(api)

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        run: dict[str, Any] = await self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, RUNS, name
        )
        return run

    async def patch_status(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """A dict is a merge patch; a list is a JSON patch (RFC 6902)."""
        kwargs: dict[str, Any] = {} if isinstance(body, list) else {"_content_type": MERGE_PATCH}
        result: dict[str, Any] = await self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, RUNS, name, body, **kwargs
        )
        return result

    async def patch_workflow_status(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, WORKFLOWS, name, body, _content_type=MERGE_PATCH
        )
        return result

    async def get_workflow(self, namespace: str, name: str) -> dict[str, Any]:
        workflow: dict[str, Any] = await self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, WORKFLOWS, name
        )
        return workflow


class ConfigMaps:
    """The ConfigMaps a run's archive and large values live in."""

    def __init__(self, api: client.ApiClient):
        self.core: Any = client.CoreV1Api(api)

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return await read_json(
            await self.core.read_namespaced_config_map(name, namespace, _preload_content=False)
        )

    async def put(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create it, or replace one of the same name not yet referenced (a retried write)."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        try:
            return await read_json(
                await self.core.create_namespaced_config_map(
                    namespace, manifest, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
        return await read_json(
            await self.core.replace_namespaced_config_map(
                name, namespace, manifest, _preload_content=False
            )
        )


def problem(exc: ApiException) -> str:
    """What the API server said was wrong, for a log line or a message."""
    try:
        said = json.loads(exc.body).get("message") if exc.body else None
    except (ValueError, AttributeError):
        said = None
    return f"{exc.status} {exc.reason}: {said}" if said else f"{exc.status} {exc.reason}"


class Events:
    """Events about our objects, posted by whoever made the change they report."""

    def __init__(self, api: client.ApiClient, component: str):
        self.core: Any = client.CoreV1Api(api)
        self.component = component
        self.instance = socket.gethostname()

    async def post(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj.get("kind", "WorkflowRun"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await read_json(
            await self.core.create_namespaced_event(
                meta["namespace"], event, _preload_content=False
            )
        )


async def read_json(response: Any) -> dict[str, Any]:
    """The body of a raw (not preloaded) response; the client raises for those only
    when it decodes them itself."""
    body = await response.read()
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=body.decode(errors="replace"))
    found: dict[str, Any] = json.loads(body)
    return found
