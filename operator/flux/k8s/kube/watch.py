"""Following a set of objects: list, watch from the list's resourceVersion, and
list again when the API server answers 410 Gone (its history no longer reaches
back that far). The one watch loop of the operator's drivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from flux.k8s.kube.client import Body, Kube, WatchEvent
from flux.k8s.kube.errors import Gone
from flux.k8s.kube.resources import Resource

# A watch is restarted this often, so a silently broken connection cannot last.
WATCH_SECONDS = 240


@dataclass(frozen=True)
class Listed:
    """The objects as a (re)list shows them; the events that follow are newer."""

    items: list[Body]


async def follow(
    kube: Kube,
    resource: Resource,
    namespace: str,
    *,
    field_selector: str | None = None,
    label_selector: str | None = None,
    since: str | None = None,
    watch_seconds: int = WATCH_SECONDS,
) -> AsyncIterator[Listed | WatchEvent]:
    """Every change to the selected objects, for as long as the caller reads.

    Starts with a :class:`Listed` unless ``since`` (a resourceVersion) says where
    to start watching; after a 410 Gone yields a new :class:`Listed`, since
    changes in between were lost. A watch the server ends resumes from the last
    version seen.
    """
    version = since
    while True:
        if version is None:
            listed = await kube.list(
                resource, namespace, field_selector=field_selector, label_selector=label_selector
            )
            yield Listed(list(listed.get("items") or []))
            version = str(listed["metadata"]["resourceVersion"])
        try:
            async for event in kube.watch(
                resource,
                namespace,
                resource_version=version,
                field_selector=field_selector,
                label_selector=label_selector,
                timeout_seconds=watch_seconds,
            ):
                version = event["object"]["metadata"].get("resourceVersion") or version
                if event["type"] != "BOOKMARK":
                    yield event
        except Gone:
            version = None
