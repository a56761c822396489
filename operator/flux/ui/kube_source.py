"""Runs on Kubernetes, read through the API with the console's own service account.

It reads WorkflowRuns, the ConfigMaps their archived history lives in, and
Workflows; nothing else and never a write (the chart's RBAC grants no more).
A run's id on the console is ``NAMESPACE.NAME``: a namespace has no dot.
The async client lives on one background event loop; the console's handlers
(run in Starlette's thread pool) wait on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

from flux.k8s import runstore
from flux.k8s.archive import ArchiveUnreadable
from flux.k8s.kube import PODS, RUNS, Kube, NotFound, Resource
from flux.k8s.kube.errors import BadRequest
from flux.k8s.kube.http import KubeClient, connect
from flux.k8s.labels import LABEL_RUN
from flux.ui.memory_run import MemoryRun
from flux.ui.pods import CALL_ID_ANNOTATION, PodStage, pod_stages
from flux.ui.source import (
    PAGE_SIZE,
    Counts,
    EventRow,
    HistoryItem,
    Move,
    RunNotFound,
    RunPage,
    RunQuery,
    RunRow,
    RunUnreadable,
    WorkflowCount,
)
from flux.ui.timeline import TaskGroup

T = TypeVar("T")

# WorkflowRun phases as the console's states (those of the embedded engine).
STATES = {
    "Pending": "CREATED",
    "Running": "RUNNING",
    "Paused": "PAUSED",
    "Succeeded": "COMPLETED",
    "Failed": "FAILED",
    "Cancelled": "CANCELLED",
}
LOG_LINES = 1000
# A page asks several questions of one run: read it once for all of them.
FRESH_SECONDS = 2.0
RESUME_COMMAND = (
    "kubectl patch fxrun {name} -n {namespace} --subresource=status --type=merge "
    """-p '{{"status":{{"resume":{{"input":JSON}}}}}}'"""
)


class KubeSource:
    """A :class:`flux.ui.source.RunSource` over WorkflowRuns in ``namespaces``
    (empty: every namespace, which needs cluster-wide read access), through
    ``kube`` or the cluster the kubeconfig names."""

    def __init__(self, namespaces: list[str], kube: Kube | None = None):
        self.namespaces = namespaces
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="kube-source", daemon=True).start()
        self.kube: Kube = kube if kube is not None else KubeClient(self._wait(connect()))
        self._cache: dict[str, tuple[float, RunRow, MemoryRun]] = {}
        self._lock = threading.Lock()

    def _wait(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=60)

    # ----------------------------------------------------------------- lists

    async def _list(self, resource: Resource) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        # None: every namespace, in one request.
        wanted: list[str | None] = [*self.namespaces] or [None]
        for namespace in wanted:
            found = await self.kube.list(resource, namespace)
            items += found.get("items") or []
        return items

    def _all_runs(self) -> list[RunRow]:
        rows = [run_row(body) for body in self._wait(self._list(RUNS))]
        return sorted(rows, key=lambda r: (r.created, r.id), reverse=True)

    def list_runs(self, query: RunQuery) -> RunPage:
        rows = [
            r
            for r in self._all_runs()
            if (not query.workflow or r.workflow == query.workflow)
            and (not query.state or r.state == query.state)
            and (query.since is None or r.created >= query.since)
        ]
        first = (max(1, query.page) - 1) * PAGE_SIZE
        return RunPage(rows[first : first + PAGE_SIZE], len(rows), max(1, query.page))

    def workflow_counts(self) -> list[WorkflowCount]:
        counts: dict[tuple[str, str], WorkflowCount] = {}
        for r in self._all_runs():
            seen = counts.get((r.workflow, r.state))
            counts[(r.workflow, r.state)] = WorkflowCount(
                r.workflow,
                r.state,
                (seen.runs if seen else 0) + 1,
                max(seen.last, r.created) if seen else r.created,
            )
        return sorted(counts.values(), key=lambda c: (c.workflow, c.state))

    def workflow_names(self) -> list[str]:
        return sorted({r.workflow for r in self._all_runs()})

    # ------------------------------------------------------------------ runs

    async def _read(self, namespace: str, name: str) -> tuple[RunRow, MemoryRun]:
        try:
            body = await self.kube.get(RUNS, namespace, name)
        except NotFound:
            raise RunNotFound(f"no WorkflowRun {name!r} in namespace {namespace!r}") from None
        try:
            history = await runstore.load_history(self.kube, namespace, body.get("status") or {})
        except ArchiveUnreadable as exc:
            raise RunUnreadable(f"part of run {namespace}/{name} is lost: {exc}") from None
        return run_row(body), MemoryRun([event_row(e) for e in history])

    def _run(self, run_id: str) -> tuple[RunRow, MemoryRun]:
        namespace, dot, name = run_id.partition(".")
        if not dot or (self.namespaces and namespace not in self.namespaces):
            raise RunNotFound(f"no run with id {run_id!r}")
        with self._lock:
            cached = self._cache.get(run_id)
            if cached and time.monotonic() - cached[0] < FRESH_SECONDS:
                return cached[1], cached[2]
        row, run = self._wait(self._read(namespace, name))
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k != run_id}
            if len(self._cache) > 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[run_id] = (time.monotonic(), row, run)
        return row, run

    def get_run(self, run_id: str) -> RunRow:
        return self._run(run_id)[0]

    def steps(self, run_id: str) -> list[HistoryItem]:
        return self._run(run_id)[1].steps()

    def counts(self, run_id: str) -> Counts:
        return self._run(run_id)[1].counts()

    def summary_steps(self, run_id: str) -> list[HistoryItem]:
        return self._run(run_id)[1].summary_steps()

    def moves(self, run_id: str) -> Generator[Move, None, None]:
        return self._run(run_id)[1].moves()

    def outcomes(self, run_id: str, calls: list[str]) -> list[Move]:
        return self._run(run_id)[1].outcomes(calls)

    def task_groups(self, run_id: str) -> list[TaskGroup]:
        return self._run(run_id)[1].task_groups()

    def call_steps(self, run_id: str, offset: int, limit: int) -> list[HistoryItem]:
        return self._run(run_id)[1].call_steps(offset, limit)

    async def _pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        found = await self.kube.list(PODS, namespace, label_selector=f"{LABEL_RUN}={name}")
        return list(found.get("items") or [])

    def pod_stages(self, run_id: str) -> dict[str, list[PodStage]]:
        row, _ = self._run(run_id)
        namespace, _, name = row.id.partition(".")
        return pod_stages(self._wait(self._pods(namespace, name)))

    async def _log(self, namespace: str, name: str, call_id: str) -> str | None:
        pods = [
            p
            for p in await self._pods(namespace, name)
            if (p["metadata"].get("annotations") or {}).get(CALL_ID_ANNOTATION) == call_id
        ]
        if not pods:
            return None
        newest = max(pods, key=lambda p: str(p["metadata"].get("creationTimestamp")))
        try:
            return await self.kube.pod_log(
                namespace, newest["metadata"]["name"], tail_lines=LOG_LINES
            )
        except (BadRequest, NotFound):  # not started yet, or already gone
            return None

    def call_logs(self, run_id: str, call_id: str) -> str | None:
        row, _ = self._run(run_id)
        namespace, _, name = row.id.partition(".")
        return self._wait(self._log(namespace, name, call_id))

    def event_count(self, run_id: str) -> int:
        return len(self._run(run_id)[1].events)

    def events(self, run_id: str, after: int, limit: int) -> list[EventRow]:
        return self._run(run_id)[1].page(after, limit)

    def call_events(self, run_id: str, call_id: str) -> list[EventRow]:
        return self._run(run_id)[1].call_events(call_id)


def run_row(body: dict[str, Any]) -> RunRow:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    created = _time(meta.get("creationTimestamp")) or dt.datetime.now(dt.UTC)
    updated = _time(status.get("finishTime")) or _time(status.get("startTime")) or created
    workflow = ((body.get("spec") or {}).get("workflowRef") or {}).get("name") or "?"
    return RunRow(
        id=f"{meta.get('namespace', '')}.{meta.get('name', '')}",
        workflow=str(workflow),
        state=STATES.get(str(status.get("phase") or "Pending"), "CREATED"),
        created=created,
        updated=updated,
        source={"namespace": meta.get("namespace"), "name": meta.get("name")},
    )


def event_row(event: dict[str, Any]) -> EventRow:
    return EventRow(
        id=int(event.get("id") or 0),
        type=str(event.get("type")),
        call=str(event.get("sourceId", "")),
        name=str(event.get("name", "")),
        time=_time(event.get("time")) or dt.datetime.fromtimestamp(0, dt.UTC),
        value=event.get("value"),
    )


def resume_command(run: RunRow, pause: str | None) -> str:
    """A paused WorkflowRun resumes through its status (a run is never "interrupted"
    on Kubernetes: the operator restarts its driver)."""
    namespace, _, name = run.id.partition(".")
    return RESUME_COMMAND.format(name=name, namespace=namespace)


def _time(text: Any) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
