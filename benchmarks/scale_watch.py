"""What benchmarks/scale.py follows while a scenario runs: run phases and pod
lifetimes (from kubectl watches), and the stored size of one run (polled)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from k8s_bench import Cluster, Row, TableWatch

FINAL = ("Succeeded", "Failed", "Cancelled")
RUN_COLUMNS = {"NAME": "metadata.name", "PHASE": "status.phase"}
POD_COLUMNS = {
    "NAME": "metadata.name",
    "RUN": r"metadata.labels.flux\.dev/run",
    "ROLE": r"metadata.labels.flux\.dev/role",
    "PHASE": "status.phase",
}


@dataclass
class RunTimes:
    added: float
    phase: str = "<none>"
    final_at: float | None = None


@dataclass
class PodTimes:
    run: str
    role: str
    added: float
    running: float | None = None
    finished: float | None = None
    deleted: float | None = None

    @property
    def end(self) -> float | None:
        return self.deleted or self.finished


def run_times(rows: list[Row]) -> dict[str, RunTimes]:
    """Per run: when it was first seen, its last phase, when it first was final."""
    runs: dict[str, RunTimes] = {}
    for row in rows:
        name, phase = row.cells[0], row.cells[1]
        times = runs.setdefault(name, RunTimes(row.at))
        if row.event == "DELETED":
            continue
        times.phase = phase
        if phase in FINAL and times.final_at is None:
            times.final_at = row.at
    return runs


def quiet_for(rows: list[Row], now: float) -> float:
    """Seconds since the watch last showed a change (0 before its first)."""
    return now - rows[-1].at if rows else 0.0


def with_listed(
    runs: dict[str, RunTimes], bodies: list[dict[str, Any]], listed_at: float
) -> dict[str, RunTimes]:
    """The watch's runs, completed by one list of them.

    A kubectl watch can miss changes (a reopened watch lists again, but one that
    stays open with events dropped does not), so a run it still shows unfinished
    may be final. The list's phase then wins, and the run's final time is its
    ``status.finishTime`` (when the driver recorded the end), or the list's time
    when it has none. Runs the watch never saw are added, first seen at the list.
    """
    merged = {name: RunTimes(t.added, t.phase, t.final_at) for name, t in runs.items()}
    for body in bodies:
        name = body["metadata"]["name"]
        status = body.get("status") or {}
        phase = str(status.get("phase") or "<none>")
        times = merged.setdefault(name, RunTimes(listed_at))
        if times.final_at is not None or phase == times.phase:
            continue
        times.phase = phase
        if phase in FINAL:
            finish = status.get("finishTime")
            times.final_at = _timestamp(finish) if finish else listed_at
    return merged


def _timestamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def pod_times(rows: list[Row]) -> dict[str, PodTimes]:
    pods: dict[str, PodTimes] = {}
    for row in rows:
        name, run, role, phase = row.cells[:4]
        times = pods.setdefault(name, PodTimes(run, role, row.at))
        if phase in ("Running", "Succeeded", "Failed") and times.running is None:
            times.running = row.at
        if phase in ("Succeeded", "Failed") and times.finished is None:
            times.finished = row.at
        if row.event == "DELETED" and times.deleted is None:
            times.deleted = row.at
    return pods


def peak_concurrency(spans: list[tuple[float, float | None]]) -> int:
    """Most spans open at one time (an open end counts as still open)."""
    edges = [(start, 1) for start, _ in spans]
    edges += [(end, -1) for _, end in spans if end is not None]
    peak = current = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        current += step
        peak = max(peak, current)
    return peak


def uncovered(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] that no span covers."""
    covered, reach = 0.0, start
    for s, e in sorted(spans):
        s, e = max(s, reach), min(e, end)
        if e > s:
            covered += e - s
            reach = e
    return (end - start) - covered


def watch_namespace(cluster: Cluster, namespace: str) -> dict[str, TableWatch]:
    """Watches of the namespace's runs, pods, ConfigMaps and Events: every change
    of an object there (a write that changed it) is one watch event."""
    name_only = {"NAME": "metadata.name"}
    columns = {
        "workflowruns": RUN_COLUMNS,
        "pods": POD_COLUMNS,
        "configmaps": name_only,
        "events": name_only,
    }
    return {kind: TableWatch(cluster, kind, namespace, c).start() for kind, c in columns.items()}


def compact_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def read_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    """The run with its managedFields, as etcd holds it."""
    proc = cluster.run(
        "get", "fxrun", name, "-n", namespace, "-o", "json", "--show-managed-fields", check=False
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def composition(body: dict[str, Any]) -> str:
    """What a run's size is made of: its largest status fields, and its task records by state."""
    status = body.get("status") or {}
    parts = {f"status.{k}": compact_size(v) for k, v in status.items()}
    parts["metadata.managedFields"] = compact_size(body["metadata"].get("managedFields"))
    parts["spec"] = compact_size(body.get("spec"))
    big = sorted(parts.items(), key=lambda kv: -kv[1])[:4]
    states = Counter(str(t.get("state")) for t in status.get("tasks") or [])
    described = ", ".join(f"{k} {v / 1024:.1f} KiB" for k, v in big)
    records = ", ".join(f"{n} {state}" for state, n in states.most_common())
    return f"{described}; task records inline: {records or 'none'}"


class SizePoller:
    """Polls one run's stored size about every `interval` seconds in a thread."""

    def __init__(self, cluster: Cluster, namespace: str, name: str, interval: float = 1.0):
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.interval = interval
        self.largest = 0
        self.last = 0
        self.polls = 0
        self.phase = "<none>"
        self.largest_made_of = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> SizePoller:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll()
            self._stop.wait(max(self.interval - (time.monotonic() - started), 0.05))

    def poll(self) -> None:
        body = read_run(self.cluster, self.namespace, self.name)
        if body is None:
            return
        self.last = compact_size(body)
        self.phase = str((body.get("status") or {}).get("phase") or "<none>")
        if self.last > self.largest:
            self.largest, self.largest_made_of = self.last, composition(body)
        self.polls += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll()  # the final object too
