"""Keeping a WorkflowRun within its size budget: what moves out of it, and how.

A WorkflowRun's status holds only a bounded tail of its history and the task
records still in play. Older history events and settled task records move to
ConfigMaps owned by the run (gzip-compressed JSON lists), listed in order in
``status.historyArchive`` and ``status.taskArchive``; values too large to keep
inline (a task's output, the workflow's output) get a ConfigMap of their own
and a reference. Each archive entry records the ConfigMap's resourceVersion, so
a reader can tell the chunk it reads is the one the status points to.

Pure: building ConfigMaps, splitting into chunks and reading them back; the
requests are in :mod:`flux.k8s.runstore` and the operator.
"""

from __future__ import annotations

import base64
import gzip
import heapq
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from flux.events import TASK_OUTCOME_EVENTS, EventType
from flux.k8s import labels
from flux.k8s.bodies import TaskRecordBody
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
_SPACE = re.compile(r"[ \t\n\r]*")


class TooLargeError(ValueError):
    """One item is too large to store even on its own."""


class ArchiveUnreadable(ValueError):
    """An archived chunk a run's status points to is gone, changed or not what
    Flux wrote: that part of the run's history is lost."""


# The fields of a history event the operator reads, which the CRD's schema
# requires of inline ones; an archived one (in a ConfigMap, which no schema
# checks) must have them too.
_EVENT_FIELDS = ("type", "sourceId", "name")


def checked_events(items: Iterable[Any], where: str) -> Iterator[Mapping[str, Any]]:
    """``items`` as history events, each checked for the fields the operator
    reads; :class:`ArchiveUnreadable` names ``where`` at the first that is not one."""
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(key), str) for key in _EVENT_FIELDS
        ):
            raise ArchiveUnreadable(f"{where}: item {position} is not a history event")
        if item["type"] == EventType.TASK_STARTED and not isinstance(item.get("value"), dict):
            raise ArchiveUnreadable(f"{where}: item {position} starts a call without its value")
        yield item


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def pack(items: Any) -> bytes:
    return gzip.compress(json.dumps(items, separators=(",", ":")).encode(), compresslevel=6)


def unpack(payload: bytes) -> Any:
    return json.loads(gzip.decompress(payload))


def unpack_items(payload: bytes) -> Iterator[Any]:
    """The items of a packed list, decoded one at a time.

    A chunk can hold 50k events: decoded whole they take about 100 MB, which the
    operator would hold at once while it reads a run's open calls.
    """
    text = gzip.decompress(payload).decode()
    decoder = json.JSONDecoder()
    index = _after_space(text, 0)
    if not text.startswith("[", index):
        raise ValueError("a packed chunk holds a JSON list")
    index = _after_space(text, index + 1)
    if text.startswith("]", index):
        return
    while True:
        item, index = decoder.raw_decode(text, index)
        yield item
        index = _after_space(text, index)
        if text.startswith("]", index):
            return
        if not text.startswith(",", index):
            raise ValueError(f"a packed chunk's list is broken at character {index}")
        index = _after_space(text, index + 1)


def split(items: Sequence[Any], limit: int = CHUNK_BYTES) -> list[tuple[bytes, int]]:
    """Packed chunks of ``items``, in order, each at most ``limit`` bytes compressed,
    with how many items each holds (so no one unpacks a chunk just to count them)."""
    if not items:
        return []
    payload = pack(list(items))
    if len(payload) <= limit:
        return [(payload, len(items))]
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
            "labels": {labels.LABEL_RUN: meta["name"], labels.LABEL_ROLE: f"archive-{kind}"},
            "ownerReferences": [{**owner_reference(run), "controller": False}],
        },
        "binaryData": {PAYLOAD_KEY: base64.b64encode(payload).decode()},
    }


def _after_space(text: str, index: int) -> int:
    found = _SPACE.match(text, index)
    return found.end() if found else index


def read_payload(configmap: dict[str, Any]) -> Any:
    return unpack(_payload(configmap))


def read_items(configmap: dict[str, Any]) -> Iterator[Any]:
    """The items of a stored chunk, decoded one at a time."""
    return unpack_items(_payload(configmap))


def _payload(configmap: dict[str, Any]) -> bytes:
    data = (configmap.get("binaryData") or {}).get(PAYLOAD_KEY)
    if data is None:
        name = configmap.get("metadata", {}).get("name")
        raise ArchiveUnreadable(f"ConfigMap {name!r} holds no {PAYLOAD_KEY}")
    return base64.b64decode(data)


def entry(configmap: dict[str, Any], count: int) -> dict[str, Any]:
    """The status entry pointing at a stored chunk."""
    meta = configmap["metadata"]
    return {"configMap": meta["name"], "count": count, "resourceVersion": meta["resourceVersion"]}


def check_entry(configmap: dict[str, Any], expected: dict[str, Any]) -> None:
    found = configmap["metadata"].get("resourceVersion")
    if found != expected.get("resourceVersion"):
        raise ArchiveUnreadable(
            f"ConfigMap {expected['configMap']!r} changed after it was archived "
            f"(resourceVersion {found}, status says {expected.get('resourceVersion')})"
        )


def history_over_budget(inline: Sequence[dict[str, Any]], new: Iterable[dict[str, Any]]) -> bool:
    size = sum(encoded_size(e) for e in inline) + sum(encoded_size(e) for e in new)
    return size > INLINE_HISTORY_BUDGET


def settled_to_archive(
    records: Sequence[TaskRecordBody], settled: set[str]
) -> list[TaskRecordBody]:
    """The settled task records to move out now: all of them, once there are enough."""
    done = [r for r in records if r.get("callId") in settled and not r.get("pod")]
    if len(done) >= INLINE_SETTLED_RECORDS or sum(encoded_size(r) for r in done) > (
        INLINE_SETTLED_BYTES
    ):
        return done
    return []


class Shape(NamedTuple):
    """What open task calls share: their TASK_STARTED event but for the call's id,
    name, time and arguments. The items of one map share one shape, so an open
    call costs little more than its arguments, however many are open."""

    key: str  # the shared part of the event, as JSON
    group: str | None  # task.map(..., batch_size=N): the map whose pods its items share
    size: int
    secrets: tuple[str, ...]


class OpenTask(NamedTuple):
    position: int  # the event's place in history: calls start in this order
    call_id: str
    shape: Shape


class _Entry(NamedTuple):
    position: int
    shape: Shape
    own: str  # JSON: the event's own fields and its value's arguments


class OpenCalls:
    """The task and sleep calls a history has started but not settled, in order.

    Built incrementally, chunk by chunk, so a reader holds only what is still
    open rather than the whole history, and that compactly: an open task is its
    arguments as JSON and a shared :class:`Shape`, decoded when asked for.

    A :meth:`layer` shares these calls with a view that later events change,
    leaving these as they are: the operator layers a run's inline history over
    the calls of its archived chunks on every pass, without copying them.
    """

    def __init__(self, base: OpenCalls | None = None) -> None:
        self._base = base
        self._tasks: dict[str, _Entry] = {}
        # Each shape's open tasks, in history order: a map's items, or a secret's users.
        self._lanes: dict[str, dict[str, None]] = {}
        self._sleeps: dict[str, tuple[int, str]] = {}
        # Calls open in the base and settled in this layer.
        self._closed: set[str] = set()
        self._closed_tasks = 0
        self.events: int = base.events if base is not None else 0

    def apply(self, events: Iterable[Mapping[str, Any]]) -> OpenCalls:
        for event in events:
            self.events += 1
            kind = event["type"]
            if kind == EventType.TASK_STARTED:
                self._start(event)
            elif kind in _OUTCOMES:
                self._settle(event["sourceId"])
        return self

    def layer(self) -> OpenCalls:
        """A view of these calls for more events to change. It reads through to these,
        which must stay as they are: extend a :meth:`copy` instead."""
        return OpenCalls(self)

    def copy(self) -> OpenCalls:
        """An independent copy, with no layers."""
        other = OpenCalls()
        other.events = self.events
        if self._base is None:
            other._tasks = dict(self._tasks)
            other._lanes = {key: dict(lane) for key, lane in self._lanes.items()}
            other._sleeps = dict(self._sleeps)
            return other
        for call_id, entry in self._entries():
            other._tasks[call_id] = entry
            other._lanes.setdefault(entry.shape.key, {})[call_id] = None
        other._sleeps = dict(self._open_sleeps())
        return other

    def __contains__(self, call_id: object) -> bool:
        if call_id in self._tasks or call_id in self._sleeps:
            return True
        return self._base is not None and call_id not in self._closed and call_id in self._base

    def __iter__(self) -> Iterator[str]:
        """The open calls' ids, tasks and sleeps, in history order."""
        tasks = ((entry.position, call_id) for call_id, entry in self._entries())
        sleeps = ((position, call_id) for call_id, (position, _) in self._open_sleeps())
        return (call_id for _, call_id in heapq.merge(tasks, sleeps))

    def is_task(self, call_id: str) -> bool:
        return self._entry(call_id) is not None

    def position(self, call_id: str) -> int:
        return self._task_entry(call_id).position

    def task_event(self, call_id: str) -> dict[str, Any]:
        """The open task's TASK_STARTED event, as history has it (a fresh copy)."""
        entry = self._task_entry(call_id)
        event: dict[str, Any] = json.loads(entry.shape.key)
        fields, value_fields = json.loads(entry.own)
        event.update(fields, sourceId=call_id)
        event["value"].update(value_fields)
        return event

    def task_count(self) -> int:
        below = self._base.task_count() - self._closed_tasks if self._base is not None else 0
        return below + len(self._tasks)

    def tasks(self, shapes: Collection[str] | None = None) -> Iterator[OpenTask]:
        """The open tasks in history order; only those of ``shapes`` (keys) if given."""
        if self._base is not None:
            for task in self._base.tasks(shapes):
                if task.call_id not in self._closed:
                    yield task
        if shapes is None:
            for call_id, entry in self._tasks.items():
                yield OpenTask(entry.position, call_id, entry.shape)
            return
        yield from heapq.merge(*(self._lane_tasks(key) for key in shapes if key in self._lanes))

    def shapes(self) -> list[Shape]:
        """The shapes of the open tasks (and perhaps of some just settled)."""
        found = {key: self._shape(key) for key in self._lanes}
        if self._base is not None:
            found = {**{s.key: s for s in self._base.shapes()}, **found}
        return [shape for shape in found.values() if shape is not None]

    def sleeps(self) -> list[str]:
        """When each open sleep ends (ISO 8601), in history order."""
        return [until for _, (_, until) in self._open_sleeps()]

    def _start(self, event: Mapping[str, Any]) -> None:
        call_id = event["sourceId"]
        if call_id in self:
            return  # a call starts once; the first TASK_STARTED stands
        value = event.get("value") or {}
        if "task" in value:
            shape, own = self._split(event, value)
            self._tasks[call_id] = _Entry(self.events, shape, own)
            self._lanes.setdefault(shape.key, {})[call_id] = None
        elif event["name"] == "sleep" and "until" in value:
            self._sleeps[call_id] = (self.events, value["until"])

    def _settle(self, call_id: str) -> None:
        entry = self._tasks.pop(call_id, None)
        if entry is not None:
            lane = self._lanes[entry.shape.key]
            del lane[call_id]
            if not lane:
                del self._lanes[entry.shape.key]
            return
        if self._sleeps.pop(call_id, None) is not None or self._base is None:
            return
        if call_id not in self._closed and call_id in self._base:
            self._closed.add(call_id)
            self._closed_tasks += int(self._base.is_task(call_id))

    def _split(self, event: Mapping[str, Any], value: Mapping[str, Any]) -> tuple[Shape, str]:
        """The event's shared part (as a shape these calls may already have) and its own."""
        shared = {k: v for k, v in event.items() if k not in _OWN_FIELDS and k != "sourceId"}
        shared["value"] = {k: v for k, v in value.items() if k not in _OWN_VALUE_FIELDS}
        key = _SHAPE_JSON.encode(shared)
        shape = self._shape(key)
        if shape is None:
            batch = value.get("batch") or {}
            shape = Shape(
                key=key,
                group=batch.get("group"),
                size=max(1, int(batch.get("size", 1))),
                secrets=tuple(value.get("secrets") or ()),
            )
        own = [
            {k: event[k] for k in _OWN_FIELDS if k in event},
            {k: value[k] for k in _OWN_VALUE_FIELDS if k in value},
        ]
        return shape, _OWN_JSON.encode(own)

    def _shape(self, key: str) -> Shape | None:
        """The shape object already in use for ``key``, so that its calls share it."""
        lane = self._lanes.get(key)
        if lane:
            return self._tasks[next(iter(lane))].shape
        return self._base._shape(key) if self._base is not None else None

    def _entry(self, call_id: str) -> _Entry | None:
        entry = self._tasks.get(call_id)
        if entry is None and self._base is not None and call_id not in self._closed:
            return self._base._entry(call_id)
        return entry

    def _task_entry(self, call_id: str) -> _Entry:
        entry = self._entry(call_id)
        if entry is None:
            raise KeyError(f"{call_id} is not an open task call")
        return entry

    def _entries(self) -> Iterator[tuple[str, _Entry]]:
        if self._base is not None:
            for call_id, entry in self._base._entries():
                if call_id not in self._closed:
                    yield call_id, entry
        yield from self._tasks.items()

    def _lane_tasks(self, key: str) -> Iterator[OpenTask]:
        for call_id in self._lanes[key]:
            entry = self._tasks[call_id]
            yield OpenTask(entry.position, call_id, entry.shape)

    def _open_sleeps(self) -> Iterator[tuple[str, tuple[int, str]]]:
        if self._base is not None:
            for call_id, sleep in self._base._open_sleeps():
                if call_id not in self._closed:
                    yield call_id, sleep
        yield from self._sleeps.items()


# With these (and its call id) left out, the TASK_STARTED events of a map's items are alike.
_OWN_FIELDS = ("id", "time", "name")
_OWN_VALUE_FIELDS = ("args", "kwargs")
# Keys sorted, so that events alike share a shape whatever their keys' order.
_SHAPE_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
_OWN_JSON = json.JSONEncoder(separators=(",", ":"))
_OUTCOMES = frozenset(e.value for e in TASK_OUTCOME_EVENTS)
