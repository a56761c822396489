"""The operator's old way to the Kubernetes API; only flux.k8s.operator uses it.

Everything else (drivers, run store, ``flux kube``, the console) goes through
the seam in :mod:`flux.k8s.kube`. This file goes when the operator moves onto
that seam too.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from flux.k8s.kube.http import KUBECONFIG_ENV as KUBECONFIG_ENV
from flux.k8s.kube.http import connect as connect
from flux.k8s.kube.versions import newer as newer

# Re-exported until every caller imports flux.k8s.names.
from flux.k8s.names import (
    ANNOTATION_ATTEMPT as ANNOTATION_ATTEMPT,
)
from flux.k8s.names import (
    ANNOTATION_BATCH_SIZE as ANNOTATION_BATCH_SIZE,
)
from flux.k8s.names import (
    ANNOTATION_CALL_ID as ANNOTATION_CALL_ID,
)
from flux.k8s.names import (
    ANNOTATION_STEP as ANNOTATION_STEP,
)
from flux.k8s.names import (
    GROUP as GROUP,
)
from flux.k8s.names import (
    LABEL_CALL as LABEL_CALL,
)
from flux.k8s.names import (
    LABEL_ROLE as LABEL_ROLE,
)
from flux.k8s.names import (
    LABEL_RUN as LABEL_RUN,
)
from flux.k8s.names import (
    LABEL_WORKFLOW as LABEL_WORKFLOW,
)
from flux.k8s.names import (
    VERSION as VERSION,
)

WORKFLOWS = "workflows"
RUNS = "workflowruns"
MERGE_PATCH = "application/merge-patch+json"


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


async def read_json(response: Any) -> dict[str, Any]:
    """The body of a raw (not preloaded) response; the client raises for those only
    when it decodes them itself."""
    body = await response.read()
    if not 200 <= response.status < 300:
        raise ApiException(status=response.status, reason=body.decode(errors="replace"))
    found: dict[str, Any] = json.loads(body)
    return found
