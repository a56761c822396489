"""Prometheus metrics of the operator, and the pure function that derives their updates.

Names follow Prometheus conventions: prefix ``flux_``, base units (seconds),
counters end in ``_total``. Labels are bounded: workflow and task names come
from code and manifests, outcomes and phases from fixed sets. No label ever
names a run or a pod.

:func:`deltas` turns one reconcile (the run's status as read, and the status
changes the plan made) into :class:`Deltas`, without touching any metric; the
Reconciler applies them with :func:`record` after the plan was carried out.

Labelled counters get their zero-valued series when this process first sees a
Workflow or a run of it (runs started and finished by outcome, driver restarts)
or a new task record (task outcomes, retries, timeouts, fallbacks, rollbacks):
Prometheus does not count the first event of a series born at 1 as an increase.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

from flux.engine.failures import FailureKind
from flux.events import EventType
from flux.k8s import labels
from flux.k8s.states import ACTIVE_PHASES, FINAL_PHASES, PodPhase, PodRole, TaskState
from flux.k8s.timestamps import parse_time

RUN_OUTCOMES = tuple(sorted(phase.lower() for phase in FINAL_PHASES))
_KNOWN_FAILURE_KINDS = frozenset(
    {FailureKind.TIMEOUT, FailureKind.INFRASTRUCTURE, FailureKind.UNSTARTABLE}
)
TASK_OUTCOMES = ("succeeded", "failed", *sorted(_KNOWN_FAILURE_KINDS), "cancelled")
RunKey = tuple[str, str]  # (namespace, name); never a label

# Runs last from seconds to days; task steps and reconciles are much shorter.
_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

RUNS_STARTED = Counter(
    "flux_runs_started_total", "WorkflowRuns the operator started.", ["workflow"]
)
RUNS_FINISHED = Counter(
    "flux_runs_finished_total",
    "WorkflowRuns that reached a final phase, by outcome (succeeded, failed, cancelled).",
    ["workflow", "outcome"],
)
RUNS_ACTIVE = Gauge(
    "flux_runs_active", "WorkflowRuns this operator process sees, by phase.", ["phase"]
)
RUNS_EXPIRED = Counter(
    "flux_runs_expired_total",
    "Finished WorkflowRuns deleted because their ttlSecondsAfterFinished had passed.",
)
RUN_DURATION = Histogram(
    "flux_run_duration_seconds",
    "From a run's start to its final phase.",
    ["workflow", "outcome"],
    buckets=_RUN_BUCKETS,
)
TASK_ATTEMPTS = Counter(
    "flux_task_attempts_total",
    "Task steps (attempts, fallbacks, rollbacks) that ended, by outcome "
    "(succeeded, failed, timeout, infrastructure, unstartable, cancelled).",
    ["workflow", "task", "outcome"],
)
TASK_RETRIES = Counter("flux_task_retries_total", "Task retries scheduled.", ["workflow", "task"])
TASK_TIMEOUTS = Counter(
    "flux_task_timeouts_total", "Task attempts that exceeded their timeout.", ["workflow", "task"]
)
TASK_FALLBACKS = Counter(
    "flux_task_fallbacks_total", "Task fallbacks started.", ["workflow", "task"]
)
TASK_ROLLBACKS = Counter(
    "flux_task_rollbacks_total", "Task rollbacks started.", ["workflow", "task"]
)
TASK_STAGE_DURATION = Histogram(
    "flux_task_stage_duration_seconds",
    "Task pod latency by stage, from pod timestamps (one-second resolution): queued "
    "(call started to its first pod created), starting (pod created to container "
    "running), running (container running to finished).",
    ["workflow", "stage"],
    buckets=_TASK_BUCKETS,
)
RECONCILE_DURATION = Histogram(
    "flux_reconcile_duration_seconds",
    "One reconcile of a WorkflowRun, API calls included, by result (ok, error).",
    ["result"],
    buckets=_RECONCILE_BUCKETS,
)
API_REQUESTS = Counter(
    "flux_kubernetes_api_requests_total",
    "Kubernetes API requests the reconciler made.",
    ["verb", "resource"],
)
API_ERRORS = Counter(
    "flux_kubernetes_api_errors_total",
    "Kubernetes API requests that failed, by HTTP status code (expected ones included).",
    ["verb", "resource", "code"],
)
DRIVER_RESTARTS = Counter(
    "flux_driver_restarts_total",
    "Driver pods started for a run that already had one (after an exit or a failure).",
    ["workflow"],
)
BUILD = Info("flux_build", "The operator's version.")
OPERATOR_LEADER = Gauge(
    "flux_operator_leader",
    "1 while this operator process holds the leader Lease and acts, 0 on a standby "
    "(flux.k8s.operator.leader).",
)
DRIVER_PODS = Gauge(
    "flux_driver_pods",
    "Per-run driver pods counted against FLUX_MAX_DRIVER_PODS (created, not yet finished).",
)
RUNS_WAITING_FOR_DRIVER = Gauge(
    "flux_runs_waiting_for_driver",
    "Runs that need a driver pod and wait for one of the FLUX_MAX_DRIVER_PODS slots.",
)
TASK_PODS_PENDING = Gauge(
    "flux_task_pods_pending",
    "Task pods in phase Pending, as the last reconcile of their run saw them.",
    ["workflow"],
)
TASK_PODS_PENDING_AGE = Gauge(
    "flux_task_pods_pending_max_age_seconds",
    "Age (from its creation, at scrape time) of the oldest task pod in phase Pending; "
    "0 when none is.",
    ["workflow"],
)

# Steps recorded in a task record (see flux.k8s.calls.with_step) that the counters follow.
_STEP_COUNTERS: dict[str, str] = {
    EventType.TASK_RETRY_STARTED: "retries",
    EventType.TASK_FALLBACK_STARTED: "fallbacks",
    EventType.TASK_ROLLBACK_STARTED: "rollbacks",
}


class PendingPods:
    """Creation times of the Pending task pods of each run, by workflow.

    Written by :func:`record` (the operator's loop), read by the pending gauges
    at scrape time (the metrics server's thread), hence the lock. Runs without
    Pending task pods are not kept. A run with Pending pods is reconciled at
    least every 15 s (the operator's backstop timer), so an entry that was not
    refreshed for ``stale_after`` seconds is dropped: one written by a reconcile
    that ended after its run was deleted and forgotten must not stay forever.
    """

    def __init__(
        self, stale_after: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._stale_after, self._clock = stale_after, clock
        # workflow -> run -> (creation times, when written)
        self._runs: dict[str, dict[RunKey, tuple[tuple[float, ...], float]]] = {}
        self._workflow_of: dict[RunKey, str] = {}

    def set(self, run: RunKey, workflow: str, created: tuple[float, ...]) -> None:
        with self._lock:
            old = self._workflow_of.pop(run, None)
            if old is not None:
                self._runs[old].pop(run, None)
            if created:
                self._workflow_of[run] = workflow
                self._runs.setdefault(workflow, {})[run] = (created, self._clock())

    def forget(self, run: RunKey) -> None:
        self.set(run, "", ())

    def _current(self, workflow: str) -> list[tuple[float, ...]]:
        with self._lock:
            runs = self._runs.get(workflow, {})
            cutoff = self._clock() - self._stale_after
            for run in [r for r, (_, written) in runs.items() if written < cutoff]:
                del runs[run], self._workflow_of[run]
            return [created for created, _ in runs.values()]

    def count(self, workflow: str) -> int:
        return sum(len(c) for c in self._current(workflow))

    def max_age(self, workflow: str, now: float | None = None) -> float:
        oldest = min((c[0] for c in self._current(workflow)), default=None)
        if oldest is None:
            return 0.0
        return max((time.time() if now is None else now) - oldest, 0.0)


PENDING_PODS = PendingPods()


@dataclass
class Deltas:
    """What one reconcile adds to the metrics. Keys are (workflow, task) or (workflow, outcome)."""

    workflow: str
    run: RunKey = ("", "")
    first_seen: bool = False  # this process had not seen the run before
    new_tasks: set[str] = field(default_factory=set)  # tasks of new (or first seen) records
    pending: tuple[float, ...] = ()  # creation times (epoch s) of Pending task pods, sorted
    started: bool = False
    finished: str | None = None  # outcome
    duration: float | None = None
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)  # (task, outcome)
    retries: dict[str, int] = field(default_factory=dict)  # task -> count
    fallbacks: dict[str, int] = field(default_factory=dict)
    rollbacks: dict[str, int] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=dict)
    driver_restarts: int = 0
    stages: list[tuple[str, float]] = field(default_factory=list)  # (stage, seconds)


def _bump(counts: dict[Any, int], key: Any, by: int = 1) -> None:
    if by:
        counts[key] = counts.get(key, 0) + by


def _step_outcome(new: Mapping[str, Any], added_steps: list[str]) -> str:
    """Outcome of the step (attempt, fallback, rollback) whose pod the record just let go."""
    state = new.get("state")
    if EventType.TASK_ROLLBACK_COMPLETED in added_steps or state == TaskState.COMPLETED:
        return "succeeded"
    if state == TaskState.CANCELLED and not added_steps:
        return "cancelled"
    kind = (new.get("lastError") or {}).get("kind")
    return kind if kind in _KNOWN_FAILURE_KINDS else "failed"


def _stages(record: Mapping[str, Any], pod: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Stage latencies of a task pod whose container has terminated."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    terminated = ((statuses[0].get("state") or {}).get("terminated") or {}) if statuses else {}
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    running, finished = (
        parse_time(terminated.get("startedAt")),
        parse_time(terminated.get("finishedAt")),
    )
    found: list[tuple[str, float]] = []
    started = parse_time(record.get("startTime"))
    if int(record.get("podStarts", 0)) == 1 and started is not None and created is not None:
        found.append(("queued", (created - started).total_seconds()))
    if created is not None and running is not None:
        found.append(("starting", (running - created).total_seconds()))
    if running is not None and finished is not None:
        found.append(("running", (finished - running).total_seconds()))
    return [(stage, max(seconds, 0.0)) for stage, seconds in found]


def _pending_since(pods: Iterable[Mapping[str, Any]]) -> tuple[float, ...]:
    """Creation times of the task pods (not drivers) in phase Pending, not being deleted."""
    found = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get(labels.LABEL_ROLE) != PodRole.TASK or meta.get(
            "deletionTimestamp"
        ):
            continue
        created = parse_time(meta.get("creationTimestamp"))
        if (
            created is not None
            and (pod.get("status") or {}).get("phase", PodPhase.PENDING) == PodPhase.PENDING
        ):
            found.append(created.timestamp())
    return tuple(sorted(found))


def _task_deltas(
    out: Deltas,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    pods: Mapping[str, Mapping[str, Any]],
) -> None:
    task = str(new.get("name") or "")
    old = old or {}
    old_steps = old.get("steps") or []
    new_steps = new.get("steps") or []
    added = [str(s.get("type")) for s in new_steps[len(old_steps) :]]
    for step in added:
        which = _STEP_COUNTERS.get(step)
        if which is not None:
            _bump(getattr(out, which), task)
    old_pod = old.get("pod")
    if old_pod and new.get("pod") != old_pod:
        outcome = _step_outcome(new, added)
        _bump(out.attempts, (task, outcome))
        if outcome == FailureKind.TIMEOUT:
            _bump(out.timeouts, task)
        pod = pods.get(old_pod)
        if pod is not None:
            out.stages.extend(_stages(old, pod))


def deltas(
    run: Mapping[str, Any],
    changes: Mapping[str, Any],
    now: dt.datetime,
    seen_phase: str | None,
    pods: Iterable[Mapping[str, Any]] = (),
) -> Deltas:
    """The metric updates of one reconcile: the run as read, the plan's status changes.

    ``seen_phase`` is the phase this process saw the run in last (None: never
    seen it). A run counts as finished only on a transition this process saw,
    so an operator restart does not count finished runs again.
    """
    status: Mapping[str, Any] = run.get("status") or {}
    meta: Mapping[str, Any] = run.get("metadata") or {}
    workflow = str(((run.get("spec") or {}).get("workflowRef") or {}).get("name") or "")
    out = Deltas(workflow=workflow, run=(str(meta.get("namespace")), str(meta.get("name"))))
    out.first_seen = seen_phase is None
    before, after = status.get("phase"), changes.get("phase", status.get("phase"))
    if after not in FINAL_PHASES:  # a finished run's pods are being deleted
        out.pending = _pending_since(pods)
    out.started = before is None and after is not None
    if after in FINAL_PHASES and seen_phase is not None and seen_phase not in FINAL_PHASES:
        out.finished = str(after).lower()
        start = parse_time(status.get("startTime")) or parse_time(
            (run.get("metadata") or {}).get("creationTimestamp")
        )
        finish = parse_time(changes.get("finishTime") or status.get("finishTime")) or now
        if start is not None:
            out.duration = max((finish - start).total_seconds(), 0.0)
    old_records = {r.get("callId"): r for r in status.get("tasks") or []}
    if out.first_seen:
        out.new_tasks.update(str(r.get("name") or "") for r in old_records.values())
    if "tasks" in changes:
        by_name = {str((p.get("metadata") or {}).get("name")): p for p in pods}
        for record in changes["tasks"] or []:
            old = old_records.get(record.get("callId"))
            if old is None:
                out.new_tasks.add(str(record.get("name") or ""))
            _task_deltas(out, old, record, by_name)
    driver = changes.get("driver")
    if driver:
        old_starts = int((status.get("driver") or {}).get("starts", 0))
        new_starts = int(driver.get("starts", old_starts))
        out.driver_restarts = max(new_starts - max(old_starts, 1), 0)
    return out


def record(d: Deltas) -> None:
    """Apply one reconcile's deltas to the metrics."""
    wf = d.workflow
    if d.first_seen:
        workflow_seen(wf)
    for task in d.new_tasks:
        _zero_task(wf, task)
    PENDING_PODS.set(d.run, wf, d.pending)
    if d.started:
        RUNS_STARTED.labels(wf).inc()
    if d.finished is not None:
        RUNS_FINISHED.labels(wf, d.finished).inc()
        if d.duration is not None:
            RUN_DURATION.labels(wf, d.finished).observe(d.duration)
    for (task, outcome), n in d.attempts.items():
        TASK_ATTEMPTS.labels(wf, task, outcome).inc(n)
    for counter, counts in (
        (TASK_RETRIES, d.retries),
        (TASK_FALLBACKS, d.fallbacks),
        (TASK_ROLLBACKS, d.rollbacks),
        (TASK_TIMEOUTS, d.timeouts),
    ):
        for task, n in counts.items():
            counter.labels(wf, task).inc(n)
    for stage, seconds in d.stages:
        TASK_STAGE_DURATION.labels(wf, stage).observe(seconds)
    if d.driver_restarts:
        DRIVER_RESTARTS.labels(wf).inc(d.driver_restarts)


def workflow_seen(wf: str) -> None:
    """The workflow's run series, at 0 until their first event, and its pending gauges:
    when this process first sees the Workflow or one of its runs."""
    RUNS_STARTED.labels(wf)
    for outcome in RUN_OUTCOMES:
        RUNS_FINISHED.labels(wf, outcome)
    DRIVER_RESTARTS.labels(wf)
    TASK_PODS_PENDING.labels(wf).set_function(lambda: PENDING_PODS.count(wf))
    TASK_PODS_PENDING_AGE.labels(wf).set_function(lambda: PENDING_PODS.max_age(wf))


def _zero_task(wf: str, task: str) -> None:
    """A task's series, at 0 until their first event."""
    for outcome in TASK_OUTCOMES:
        TASK_ATTEMPTS.labels(wf, task, outcome)
    for counter in (TASK_RETRIES, TASK_FALLBACKS, TASK_ROLLBACKS, TASK_TIMEOUTS):
        counter.labels(wf, task)


def forget_run(namespace: str, name: str) -> None:
    """A deleted run: its pods no longer count as pending."""
    PENDING_PODS.forget((namespace, name))


def set_active(phases: Iterable[str]) -> None:
    """Set the active-runs gauge from the phases of the runs this process tracks."""
    counts: dict[str, int] = {}
    for phase in phases:
        counts[phase] = counts.get(phase, 0) + 1
    set_active_counts(counts)


def set_active_counts(counts: Mapping[str, int]) -> None:
    """Set the active-runs gauge from how many runs this process tracks in each
    phase: a count the caller keeps as phases move, since counting every run's
    phase at each move made a thousand runs' passes quadratic."""
    for phase in ACTIVE_PHASES:
        RUNS_ACTIVE.labels(phase).set(counts.get(phase, 0))


def set_build_info() -> None:
    try:
        version = metadata.version("flux-k8s")
    except metadata.PackageNotFoundError:
        version = "unknown"
    BUILD.info({"version": version})
