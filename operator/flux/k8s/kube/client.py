"""The interface every Kubernetes call goes through.

Bodies are plain JSON dicts as the API server sends them (no client model
classes: decoding those cost more than the requests). ``KubeClient`` in
:mod:`flux.k8s.kube.http` talks to a real server; :class:`~flux.k8s.kube.fake.FakeKube`
keeps objects in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol, TypedDict

from flux.k8s.kube.patch import JsonPatch
from flux.k8s.kube.resources import Resource

Body = dict[str, Any]


class WatchEvent(TypedDict):
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: Body


class Kube(Protocol):
    """One API server. Every method raises a :class:`~flux.k8s.kube.errors.KubeError`."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Body: ...

    async def list(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Body:
        """``{"items": [...], "metadata": {"resourceVersion": ...}}``; all namespaces for None."""
        ...

    async def create(self, resource: Resource, namespace: str, body: Body) -> Body: ...

    async def replace(self, resource: Resource, namespace: str, name: str, body: Body) -> Body: ...

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: JsonPatch | Body,
        *,
        status: bool = False,
    ) -> Body:
        """A :class:`JsonPatch` (RFC 6902) or a dict (a merge patch); ``status`` for the
        status subresource."""
        ...

    async def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> None: ...

    async def pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str: ...

    def stream_pod_log(self, namespace: str, name: str) -> AsyncIterator[str]:
        """The pod's log from its start, text as it is written, until its container ends."""
        ...

    def watch(
        self,
        resource: Resource,
        namespace: str,
        *,
        resource_version: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` until the server ends the watch;
        :class:`~flux.k8s.kube.errors.Gone` when that version is too old."""
        ...
