"""A run's code revision: what it executes, fixed when it starts (pure).

A Workflow's spec changes as people edit it; a run in flight must keep running
the code it started with, or a driver that restarts replays history against
other code. The revision names that code: a hash of the image and the
``module:function`` the pods import, and for an inline Workflow of its source.
Each revision is kept in an immutable ConfigMap named by that hash, so no edit
reaches a run using it and a run's record can be checked against it. The
operator records the revision in the run's status at the start
(:func:`pinned_status`) and builds every pod of the run from that record
(:func:`run_revision`), never from the Workflow's current spec.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from flux.k8s import labels
from flux.k8s.bodies import PodBody, RunStatusBody, WorkflowSpecBody
from flux.k8s.labels import REVISION_LENGTH, REVISION_PATTERN
from flux.k8s.protocol import INLINE_SOURCE_MODULE

_REVISION_RE = re.compile(REVISION_PATTERN)
SOURCE_KEY = f"{INLINE_SOURCE_MODULE}.py"
PART_OF = "flux"


IMAGE_KEY = "image"
ENTRYPOINT_KEY = "entrypoint"


@dataclass(frozen=True)
class Revision:
    """The code a run executes: ``entrypoint`` (``module:function``) in ``image``,
    with ``source`` (an inline Workflow's module) mounted from the revision's ConfigMap."""

    name: str
    entrypoint: str
    image: str
    source: str | None = None

    @property
    def inline(self) -> bool:
        return self.source is not None


def _digest(image: str, entrypoint: str, source: str | None) -> str:
    parts = [image, entrypoint, *([source] if source is not None else [])]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:REVISION_LENGTH]


def workflow_revision(spec: WorkflowSpecBody, image: str) -> Revision:
    """The revision a run of a Workflow with ``spec`` would start on now (``image``:
    the image its pods run, the spec's or the operator's default)."""
    source = spec.get("source")
    if source:
        entrypoint = f"{INLINE_SOURCE_MODULE}:{spec.get('function', '')}"
    else:
        source, entrypoint = None, str(spec.get("entrypoint", ""))
    return Revision(_digest(image, entrypoint, source), entrypoint, image, source)


def pinned_status(revision: Revision) -> RunStatusBody:
    """The status fields a run records at its start, never changed after."""
    return {"revision": revision.name, "entrypoint": revision.entrypoint, "image": revision.image}


def run_revision(status: RunStatusBody) -> Revision | None:
    """The revision a run recorded (its source left out), or None before its start."""
    name, entrypoint, image = status.get("revision"), status.get("entrypoint"), status.get("image")
    if not name or not entrypoint or not image:
        return None
    inline = entrypoint.partition(":")[0] == INLINE_SOURCE_MODULE
    return Revision(name, entrypoint, image, "" if inline else None)


def same(recorded: Revision, revision: Revision) -> bool:
    """Whether a run's record names ``revision`` (records leave the source out)."""
    return (recorded.name, recorded.entrypoint, recorded.image, recorded.inline) == (
        revision.name,
        revision.entrypoint,
        revision.image,
        revision.inline,
    )


def configmap_labels(workflow_name: str, revision: str) -> dict[str, str]:
    """The labels of a revision's ConfigMap: the operator finds a Workflow's revisions,
    and checks the one a run names is its Workflow's, by them."""
    return {
        labels.LABEL_WORKFLOW: workflow_name,
        labels.LABEL_REVISION: revision,
        labels.LABEL_PART_OF: PART_OF,
    }


def configmap_data(revision: Revision) -> dict[str, str]:
    """What a revision's ConfigMap holds: enough to tell it is the revision it is named for."""
    data = {IMAGE_KEY: revision.image, ENTRYPOINT_KEY: revision.entrypoint}
    if revision.source is not None:
        data[SOURCE_KEY] = revision.source
    return data


def from_configmap(configmap: Mapping[str, Any], workflow_name: str) -> Revision | None:
    """The revision a ConfigMap holds, if it is one of ``workflow_name``'s and its
    content hashes to its name; None for anything else (a hostile run's pointer)."""
    found = (configmap.get("metadata") or {}).get("labels") or {}
    data = configmap.get("data") or {}
    name = found.get(labels.LABEL_REVISION)
    if found.get(labels.LABEL_WORKFLOW) != workflow_name or not valid_name(name):
        return None
    image, entrypoint = data.get(IMAGE_KEY), data.get(ENTRYPOINT_KEY)
    if not isinstance(image, str) or not isinstance(entrypoint, str):
        return None
    source = data.get(SOURCE_KEY)
    revision = Revision(str(name), entrypoint, image, source if isinstance(source, str) else None)
    return revision if _digest(image, entrypoint, revision.source) == name else None


def valid_name(name: Any) -> TypeGuard[str]:
    """Whether ``name`` is shaped like a revision (the CRD refuses other shapes too)."""
    return isinstance(name, str) and bool(_REVISION_RE.match(name))


def unused(found: dict[str, str], current: str | None, in_use: set[str]) -> list[str]:
    """Of a Workflow's revision ConfigMaps (``found``: revision by ConfigMap name), the
    names of those neither the Workflow's current revision nor recorded by a run."""
    keep = in_use | ({current} if current else set())
    return sorted(name for name, revision in found.items() if revision not in keep)


def image_digest(pods: list[PodBody], image: str) -> str | None:
    """The digest the node reports for ``image`` in one of the run's pods, if any."""
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            image_id = container.get("imageID") or ""
            if container.get("image") == image and "sha256:" in image_id:
                return image_id
    return None
