"""A WorkflowRun's archived parts in their ConfigMaps: stored, and read back
(history, task records, large values, task logs).

What :mod:`flux.k8s.archive` moves out of the object is read back here, for
the driver, the operator, the CLI and the console alike, so the run reads as if
nothing had moved.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from flux.k8s import archive, log_archive
from flux.k8s.kube import CONFIGMAPS, Kube, NotFound


async def load_chunk(kube: Kube, namespace: str, item: dict[str, Any]) -> list[dict[str, Any]]:
    found = await _archived(kube, namespace, item)
    with _unreadable(item):
        items: list[dict[str, Any]] = archive.read_payload(found)
    return items


async def open_chunk(kube: Kube, namespace: str, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A chunk's items, decoded one at a time as they are iterated (decoding
    errors surface then: see :func:`_unreadable`)."""
    return archive.read_items(await _archived(kube, namespace, item))


async def _archived(kube: Kube, namespace: str, ref: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap ``ref`` (a status entry) points to, as it was archived;
    :class:`archive.ArchiveUnreadable` if it is gone or changed since. Failures
    to reach the API server are raised as they are: a later try may succeed."""
    try:
        found = await kube.get(CONFIGMAPS, namespace, ref["configMap"])
    except NotFound:
        raise archive.ArchiveUnreadable(f"{_where(ref)} is gone") from None
    archive.check_entry(found, ref)
    return found


@contextlib.contextmanager
def _unreadable(ref: dict[str, Any]) -> Iterator[None]:
    """What decoding an archived ConfigMap raises for bytes Flux did not write
    (base64, gzip, JSON), as :class:`archive.ArchiveUnreadable`. The shape of an
    event is archive.checked_events' to check: a TypeError or KeyError past it
    is a bug of ours, not a lost history, and is raised as it is."""
    try:
        yield
    except archive.ArchiveUnreadable:
        raise
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise archive.ArchiveUnreadable(f"{_where(ref)} is unreadable: {exc}") from None


def _where(ref: dict[str, Any]) -> str:
    return f"ConfigMap {ref.get('configMap')!r} of the run's archive"


async def load_history(kube: Kube, namespace: str, status: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's whole history, archived chunks first, as status events."""
    events: list[dict[str, Any]] = []
    for item in status.get("historyArchive") or []:
        events.extend(await load_chunk(kube, namespace, item))
    events.extend(status.get("history") or [])
    return events


async def load_task_records(
    kube: Kube, namespace: str, status: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every task record of the run: the archived ones, then those in status."""
    records: list[dict[str, Any]] = []
    for item in status.get("taskArchive") or []:
        records.extend(await load_chunk(kube, namespace, item))
    records.extend(status.get("tasks") or [])
    return records


async def load_value(kube: Kube, namespace: str, ref: dict[str, Any]) -> Any:
    """A value kept in its own ConfigMap (``outputRef``)."""
    found = await _archived(kube, namespace, ref)
    with _unreadable(ref):
        return archive.read_payload(found)


async def load_output(kube: Kube, namespace: str, status: dict[str, Any]) -> Any:
    """The workflow's output, wherever it is kept."""
    ref = status.get("outputRef")
    if ref:
        return await load_value(kube, namespace, ref)
    return status.get("output")


async def load_task_logs(
    kube: Kube,
    namespace: str,
    run: str,
    call_id: str | None = None,
    attempt: int | None = None,
) -> list[log_archive.LogEntry]:
    """The kept logs of the run's finished task pods, in the order they ran; only
    those of ``call_id`` and of ``attempt`` if given (a batch pod's log is one
    entry naming all its calls). Pods still running are not among them."""
    found = await kube.list(CONFIGMAPS, namespace, label_selector=log_archive.selector(run))
    entries: list[log_archive.LogEntry] = []
    for configmap in found.get("items") or []:
        for item in archive.read_items(configmap):
            if log_archive.matches(item, call_id, attempt):
                entries.append(item)
    return log_archive.ordered(entries)


class OpenCallsCache:
    """The open calls of each run's archived history, for the operator's reconciles.

    Archived chunks never change once referenced, so the calls they leave open
    are computed once per run and extended as chunks are added. Each pass gets
    them with the inline history layered on top: a run with 100k open calls
    costs a pass its inline events, not a copy of the 100k. It is only a cache:
    a fresh operator rebuilds it from the ConfigMaps.
    """

    def __init__(self, kube: Kube, max_runs: int = 256):
        self.kube = kube
        self.max_runs = max_runs
        self._runs: OrderedDict[tuple[str, str], tuple[tuple[str, ...], archive.OpenCalls]] = (
            OrderedDict()
        )

    async def open_calls(self, run: dict[str, Any]) -> archive.OpenCalls:
        """Open calls of the archived history followed by the inline one."""
        meta, status = run["metadata"], run.get("status") or {}
        entries = status.get("historyArchive") or []
        key = (meta["namespace"], meta["name"])
        versions = tuple(e["resourceVersion"] for e in entries)
        cached = self._runs.get(key)
        if cached is not None and versions[: len(cached[0])] == cached[0]:
            done, calls = cached
        else:
            done, calls = (), archive.OpenCalls()
        if len(entries) > len(done):
            # Extended on a copy: earlier passes' layers keep theirs, and a chunk that
            # fails to load leaves the cached calls as they were.
            calls = calls.copy()
            for item in entries[len(done) :]:
                await self._apply_chunk(calls, meta["namespace"], item)
        if entries:
            self._runs[key] = (versions, calls)
            self._runs.move_to_end(key)
            while len(self._runs) > self.max_runs:
                self._runs.popitem(last=False)
        return calls.layer().apply(status.get("history") or [])

    async def _apply_chunk(
        self, calls: archive.OpenCalls, namespace: str, item: dict[str, Any]
    ) -> None:
        """The chunk's events applied to ``calls``; :class:`archive.ArchiveUnreadable`
        when it is gone, changed since it was archived, or not history."""
        events = await open_chunk(self.kube, namespace, item)
        with _unreadable(item):
            calls.apply(archive.checked_events(events, _where(item)))

    def forget(self, namespace: str, name: str) -> None:
        self._runs.pop((namespace, name), None)
