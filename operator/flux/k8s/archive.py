"""Keeping a WorkflowRun within its size budget: what moves out of it, and how.

A WorkflowRun's status holds only a bounded tail of its history and the task
records still in play. Older history events and settled task records move to
ConfigMaps owned by the run (gzip-compressed JSON lists), listed in order in
``status.historyArchive`` and ``status.taskArchive``; values too large to keep
inline (a task's output, the workflow's output) get a ConfigMap of their own
and a reference. Each archive entry records the ConfigMap's resourceVersion, so
a reader can tell the chunk it reads is the one the status points to.

Pure: building ConfigMaps, splitting into chunks and reading them back. The
API calls are in :mod:`flux.k8s.api`.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Sequence
from typing import Any

from flux.events import TASK_OUTCOME_EVENTS
from flux.k8s import api
from flux.k8s.pods import dns_label, owner_reference

# The whole WorkflowRun stays under this (etcd takes 1.5 MiB; Argo fails past 1 MiB).
RUN_BUDGET = 256 * 1024
# status.history is sealed into a chunk once its events would take more than this.
INLINE_HISTORY_BUDGET = 64 * 1024
# Settled task records kept inline before they are archived together.
INLINE_SETTLED_RECORDS = 64
INLINE_SETTLED_BYTES = 32 * 1024
# A value (task or workflow output) larger than this, encoded, moves to its own ConfigMap.
INLINE_VALUE_BYTES = 16 * 1024
# A ConfigMap holds at most 1 MiB; base64 grows binaryData by 4/3.
CHUNK_BYTES = 700 * 1024
PAYLOAD_KEY = "data.json.gz"
HISTORY = "history"
TASKS = "tasks"
VALUE = "value"


class TooLargeError(ValueError):
    """One item is too large to store even on its own."""


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def pack(items: Any) -> bytes:
    return gzip.compress(json.dumps(items, separators=(",", ":")).encode(), compresslevel=6)


def unpack(payload: bytes) -> Any:
    return json.loads(gzip.decompress(payload))


def split(items: Sequence[Any], limit: int = CHUNK_BYTES) -> list[bytes]:
    """Packed chunks of ``items``, in order, each at most ``limit`` bytes compressed."""
    if not items:
        return []
    payload = pack(list(items))
    if len(payload) <= limit:
        return [payload]
    if len(items) == 1:
        raise TooLargeError(
            f"one item is {len(payload)} bytes compressed, more than a ConfigMap can hold "
            f"({limit}); return a smaller value or use output_storage"
        )
    middle = len(items) // 2
    return split(items[:middle], limit) + split(items[middle:], limit)


def chunk_name(run_name: str, kind: str, index: int) -> str:
    return dns_label(run_name, kind, str(index), limit=253)


def value_name(run_name: str, key: str) -> str:
    return dns_label(run_name, VALUE, key, limit=253)


def configmap(run: dict[str, Any], name: str, kind: str, payload: bytes) -> dict[str, Any]:
    """A ConfigMap owned by the run, so it goes when the run is deleted."""
    meta = run["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {api.LABEL_RUN: meta["name"], api.LABEL_ROLE: f"archive-{kind}"},
            "ownerReferences": [{**owner_reference(run), "controller": False}],
        },
        "binaryData": {PAYLOAD_KEY: base64.b64encode(payload).decode()},
    }


def read_payload(configmap: dict[str, Any]) -> Any:
    data = (configmap.get("binaryData") or {}).get(PAYLOAD_KEY)
    if data is None:
        name = configmap.get("metadata", {}).get("name")
        raise ValueError(f"ConfigMap {name!r} holds no {PAYLOAD_KEY}")
    return unpack(base64.b64decode(data))


def entry(configmap: dict[str, Any], count: int) -> dict[str, Any]:
    """The status entry pointing at a stored chunk."""
    meta = configmap["metadata"]
    return {"configMap": meta["name"], "count": count, "resourceVersion": meta["resourceVersion"]}


def check_entry(configmap: dict[str, Any], expected: dict[str, Any]) -> None:
    found = configmap["metadata"].get("resourceVersion")
    if found != expected.get("resourceVersion"):
        raise ValueError(
            f"ConfigMap {expected['configMap']!r} changed after it was archived "
            f"(resourceVersion {found}, status says {expected.get('resourceVersion')})"
        )


def history_over_budget(inline: Sequence[dict[str, Any]], new: Iterable[dict[str, Any]]) -> bool:
    size = sum(encoded_size(e) for e in inline) + sum(encoded_size(e) for e in new)
    return size > INLINE_HISTORY_BUDGET


def settled_to_archive(
    records: Sequence[dict[str, Any]], settled: set[str]
) -> list[dict[str, Any]]:
    """The settled task records to move out now: all of them, once there are enough."""
    done = [r for r in records if r.get("callId") in settled and not r.get("pod")]
    if len(done) >= INLINE_SETTLED_RECORDS or sum(encoded_size(r) for r in done) > (
        INLINE_SETTLED_BYTES
    ):
        return done
    return []


class OpenCalls:
    """The task and sleep calls a history has started but not settled, in order.

    Built incrementally, chunk by chunk, so a reader holds only what is still
    open rather than the whole history.
    """

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.events = 0

    def apply(self, events: Iterable[dict[str, Any]]) -> OpenCalls:
        for event in events:
            self.events += 1
            kind = event["type"]
            if kind == "TASK_STARTED":
                value = event.get("value") or {}
                if "task" in value or (event["name"] == "sleep" and "until" in value):
                    self.started[event["sourceId"]] = event
            elif kind in _OUTCOMES:
                self.started.pop(event["sourceId"], None)
        return self

    def copy(self) -> OpenCalls:
        other = OpenCalls()
        other.started = dict(self.started)
        other.events = self.events
        return other


_OUTCOMES = frozenset(e.value for e in TASK_OUTCOME_EVENTS)
