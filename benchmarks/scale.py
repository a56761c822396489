"""Scale benchmarks (issue 7) on the local test cluster.

Scenarios (all three unless some are picked):

  --throughput  --runs N (1000) single-task WorkflowRuns created at once: time
                from the first create to the last final phase, runs per minute,
                API writes per run (the API server's apiserver_request_total),
                watch events per run to every watcher (apiserver_watch_events_total),
                the operator's own API requests, CPU time and peak RSS, and
                where a run's time goes (from watches of runs and pods and the
                runs' history).
  --fanout      one run of `noop.map(range(--map-items))` (10000) and one of
                `parallel(*[noop(i) for i in range(--parallel-tasks)])` (1000):
                time, largest stored size of the run (polled every second),
                its archive ConfigMaps, operator CPU and peak RSS.
  --batched     `noop.map(range(--batch-items), batch_size=--batch-size)`
                (100000 items, 1000 per pod) with real task pods, at most
                --batch-parallelism (20) at a time: the same figures.

Task pods go to the simulated node flux-sim (kwok), where they complete at once
with no output, except in --batched (the batch result format is not simulated).
Driver pods run for real. Each scenario (each run of --fanout) gets a fresh
namespace bench-<random> (restricted Pod Security Standard, the driver's RBAC)
and its own operator (`python -m flux.k8s`, FLUX_WATCH_NAMESPACES=bench-*,
metrics on a free port), and stops by itself after --timeout seconds, printing
what finished. Everything is deleted at the end. Run one benchmark at a time:
their operators all serve bench-*.

    .venv/bin/python benchmarks/scale.py [--throughput] [--fanout] [--batched]
        [--runs 1000] [--map-items 10000] [--parallel-tasks 1000]
        [--batch-items 100000] [--batch-size 1000] [--batch-parallelism 20]
        [--timeout 1800] [--max-driver-pods N] [--write-results]
        [--kubeconfig PATH --kubectl PATH --image IMAGE]

With --write-results, the figures replace the scenarios' sections of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from kubernetes_asyncio import client, config

from flux.k8s.config import OperatorConfig
from k8s_bench import (
    MACHINE,
    Cluster,
    CpuUse,
    CpuWindow,
    OperatorProcess,
    ProcessStats,
    TableWatch,
    create_namespace,
    delete_namespaces,
    increase,
    other_namespaces,
    percentile,
    release_runs,
    samples,
    summed,
    wait_for_other_benchmarks,
    wait_quiet,
)
from scale_report import (
    RESULTS,
    Report,
    Table,
    kib,
    mib,
    operator_commit,
    render_text,
    seconds,
    write_results,
)
from scale_watch import (
    FINAL,
    PodTimes,
    RunTimes,
    SizePoller,
    peak_concurrency,
    pod_times,
    quiet_for,
    run_times,
    uncovered,
    watch_namespace,
    with_listed,
)

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow
from flux.tasks import parallel


@task
def noop(i: int) -> None:
    return None


@workflow
async def single(ctx: WorkflowExecutionContext[int]) -> None:
    return await noop(ctx.input)


@workflow
async def fan_map(ctx: WorkflowExecutionContext[int]) -> int:
    return len(await noop.map(range(ctx.input)))


@workflow
async def fan_parallel(ctx: WorkflowExecutionContext[int]) -> int:
    return len(await parallel(*[noop(i) for i in range(ctx.input)]))


@workflow
async def batched(ctx: WorkflowExecutionContext[dict]) -> int:
    return len(await noop.map(range(ctx.input["items"]), batch_size=ctx.input["batch"]))
"""
# Task pods on the simulated node (cluster/README.md).
SIMULATED = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
# Resources whose writes count; pods/status and pods/binding are the kubelet's,
# kwok's and the scheduler's, not ours.
WRITTEN = frozenset({"workflowruns", "pods", "configmaps", "events"})
NOT_OURS = frozenset({("pods", "status"), ("pods", "binding")})
PROGRESS_EVERY = 15.0
# Seconds without a run change after which the runs are listed once: the run
# watch can miss final phases, and waiting for them would run to --timeout.
WATCH_QUIET = 5.0
# Seconds to wait for another benchmark (another operator serving bench-*) to end.
OTHER_BENCHMARK_WAIT = 3600.0


# ----------------------------------------------------------------- manifests


def workflow_manifest(
    name: str,
    function: str,
    simulated: bool,
    parallelism: int | None = None,
    driver_mode: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": SOURCE, "function": function}
    if driver_mode:
        spec["driverMode"] = driver_mode
    if simulated:
        spec["taskDefaults"] = SIMULATED
    if parallelism:
        spec["parallelism"] = parallelism
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": spec,
    }


def run_manifest(name: str, workflow: str, value: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, "input": value},
    }


# ---------------------------------------------------------------- the bench


class Bench:
    """A fresh namespace with its own operator and watches; all gone on exit."""

    def __init__(self, cluster: Cluster, label: str):
        self.cluster, self.label = cluster, label
        self.namespace = ""
        self.operator = OperatorProcess(cluster, watch="bench-*")
        self.watches: dict[str, TableWatch] = {}
        self.others: set[str] = set()
        self.commit = "?"
        # The runs as last listed, and when (see list_runs).
        self.listed: list[dict[str, Any]] = []
        self.listed_at: float | None = None

    def __enter__(self) -> Bench:
        try:
            wait_for_other_benchmarks(self.cluster, timeout=OTHER_BENCHMARK_WAIT)
            self.others.update(other_namespaces(self.cluster))
            self.namespace = create_namespace(self.cluster)
            self.commit = operator_commit()
            self.operator.start()
            self.watches = watch_namespace(self.cluster, self.namespace)
        except BaseException:
            self.close()
            raise
        print(
            f"[{self.label}] namespace {self.namespace}, operator pid {self.operator.pid}, "
            f"log {self.operator.log_path}",
            flush=True,
        )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.operator.alive():
            print(f"[{self.label}] operator log tail:\n{self.operator.log_tail()}", file=sys.stderr)
        self.close()

    def close(self) -> None:
        for watch in self.watches.values():
            watch.stop()
        if self.namespace:
            print(f"[{self.label}] deleting namespace {self.namespace} ...", flush=True)
            left = delete_namespaces(self.cluster, [self.namespace], timeout=300)
            if left:  # runs the operator did not release in time
                release_runs(self.cluster, self.namespace)
                left = delete_namespaces(self.cluster, left, timeout=120)
            if left:
                print(f"[{self.label}] namespace {self.namespace} still terminating", flush=True)
        self.operator.stop()

    def note_others(self) -> None:
        self.others.update(other_namespaces(self.cluster))

    def add_workflow(self, manifest: dict[str, Any]) -> None:
        self.cluster.apply(manifest, self.namespace)
        self.cluster.out(
            "wait", "-n", self.namespace, "--for=condition=Ready", "--timeout=120s",
            f"workflow/{manifest['metadata']['name']}",
        )  # fmt: skip

    def run_rows(self) -> dict[str, RunTimes]:
        runs = run_times(self.watches["workflowruns"].snapshot())
        if self.listed_at is None:
            return runs
        return with_listed(runs, self.listed, self.listed_at)

    def list_runs_if_quiet(self) -> None:
        """List the runs (one request) when their watch has shown nothing for
        WATCH_QUIET seconds and nothing since the last list."""
        rows = self.watches["workflowruns"].snapshot()
        now = time.time()
        if quiet_for(rows, now) < WATCH_QUIET:
            return
        if self.listed_at is not None and rows and rows[-1].at <= self.listed_at:
            return
        self.listed = self.cluster.json("get", "fxrun", "-n", self.namespace)["items"]
        self.listed_at = now

    def pod_rows(self) -> dict[str, PodTimes]:
        return pod_times(self.watches["pods"].snapshot())

    def changes(self, since: float, until: float) -> dict[tuple[str, str], int]:
        """Watch events in the namespace between two times, by (resource, event)."""
        counts: Counter[tuple[str, str]] = Counter()
        for resource, watch in self.watches.items():
            for row in watch.snapshot():
                if since <= row.at <= until:
                    counts[(resource, row.event)] += 1
        return dict(counts)

    def wait_pods_gone(self, timeout: float = 60) -> None:
        """Until the operator deleted the runs' finished pods (its last writes), or
        timeout. A shared driver pod stays for its linger time; it is not waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            names = self.cluster.out(
                "get", "pods", "-n", self.namespace, "-o", "name",
                "-l", "flux.dev/role in (driver,task)",
            )  # fmt: skip
            if not names.split():
                time.sleep(3)  # finalizers and conditions settle
                return
            time.sleep(2)

    def notes(self) -> list[str]:
        """Other workloads on the cluster, and the operator's errors."""
        errors = self.operator.errors()
        found = [f"Operator log errors (most frequent): {'; '.join(errors)}"] if errors else []
        return self.others_note() + found

    def others_note(self) -> list[str]:
        if not self.others:
            return []
        names = ", ".join(sorted(self.others))
        return [
            f"Other workloads shared the cluster during this scenario (namespaces {names}); "
            "the API server's counts include their requests, the operator's do not."
        ]


async def _create_runs(cluster: Cluster, namespace: str, runs: list[dict[str, Any]]) -> None:
    await config.load_kube_config(config_file=cluster.kubeconfig)
    async with client.ApiClient() as api:
        custom: Any = client.CustomObjectsApi(api)
        gate = asyncio.Semaphore(32)

        async def create(run: dict[str, Any]) -> None:
            async with gate:
                await custom.create_namespaced_custom_object(
                    "flux.dev", "v1alpha1", namespace, "workflowruns", run
                )

        await asyncio.gather(*(create(run) for run in runs))


def create_runs(cluster: Cluster, namespace: str, runs: list[dict[str, Any]]) -> None:
    """Creates the runs concurrently (32 requests in flight)."""
    asyncio.run(_create_runs(cluster, namespace, runs))


# ------------------------------------------------------------ API accounting


def api_writes(before: str, after: str) -> dict[tuple[str, ...], float]:
    """Write requests to the counted resources between two scrapes of the API
    server's /metrics, by (resource, subresource, verb, outcome): "written" for
    a 2xx answer, else "refused <code>" (a failed JSON-patch test, a conflict,
    kwok's delete of a pod already gone), which stores nothing."""
    moved = increase(
        samples(before, "apiserver_request_total"), samples(after, "apiserver_request_total")
    )
    by_key = summed(moved, "resource", "subresource", "verb", "code")
    counted: dict[tuple[str, ...], float] = {}
    for (resource, sub, verb, code), n in by_key.items():
        if verb in WRITE_VERBS and resource in WRITTEN and (resource, sub) not in NOT_OURS:
            outcome = "written" if code.startswith("2") else f"refused {code}"
            key = (resource, sub, verb, outcome)
            counted[key] = counted.get(key, 0.0) + n
    return counted


def watch_events(before: str, after: str) -> dict[str, float]:
    """Watch events the API server sent between two scrapes of its /metrics, by
    resource, summed over every watcher (the operator, the shared driver, the
    scheduler, the controller manager, kwok, the kubelet, this benchmark's
    kubectl): each change of an object is one event to each watcher that sees it."""
    name = "apiserver_watch_events_total"
    moved = increase(samples(before, name), samples(after, name))
    return {
        resource: n for (resource,), n in summed(moved, "resource").items() if resource in WRITTEN
    }


def writes_done(writes: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    return {key: n for key, n in writes.items() if key[3] == "written"}


def operator_requests(before: str, after: str) -> dict[tuple[str, ...], float]:
    name = "flux_kubernetes_api_requests_total"
    return summed(increase(samples(before, name), samples(after, name)), "verb", "resource")


def cpu_table(use: CpuUse) -> Table:
    """Who used the machine's CPU during the window."""
    busy = use.seconds[MACHINE]
    table = Table(
        f"CPU seconds during the {use.elapsed:.0f} s measured "
        f"({use.capacity:.0f} CPU-seconds available)",
        ("who", "CPU s", "share of busy"),
    )
    table.add(MACHINE, f"{busy:.1f}", f"{busy / use.capacity:.0%} of all")
    parts = {k: v for k, v in use.seconds.items() if k != MACHINE}
    for who, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        if value >= 0.05:
            table.add(who, f"{value:.1f}", f"{value / busy:.0%}" if busy else "-")
    rest = busy - sum(v for v in parts.values() if v == v)  # NaN-safe
    table.add("the rest (short-lived: runc, CNI plugins, shims; other users)", f"{rest:.1f}", "")
    return table


def writes_table(writes: dict[tuple[str, ...], float], per: int) -> Table:
    table = Table(
        "API server write requests (apiserver_request_total)",
        ("resource", "verb", "outcome", "count", "per run"),
    )
    for (resource, sub, verb, outcome), n in sorted(writes.items()):
        name = f"{resource}/{sub}" if sub else resource
        table.add(name, verb, outcome, int(n), f"{n / per:.2f}")
    done = sum(writes_done(writes).values())
    table.add("all written", "", "", int(done), f"{done / per:.2f}")
    refused = sum(writes.values()) - done
    table.add("all refused", "", "", int(refused), f"{refused / per:.2f}")
    return table


def watch_events_table(events: dict[str, float], per: int) -> Table:
    table = Table(
        "Watch events sent by the API server (apiserver_watch_events_total, every watcher)",
        ("resource", "count", "per run"),
    )
    for resource, n in sorted(events.items()):
        table.add(resource, int(n), f"{n / per:.2f}")
    total = sum(events.values())
    table.add("all", int(total), f"{total / per:.2f}")
    return table


def requests_table(requests: dict[tuple[str, ...], float], per: int, unit: str) -> Table:
    table = Table(
        "Operator requests (flux_kubernetes_api_requests_total)",
        ("resource", "verb", "count", f"per {unit}"),
    )
    for (verb, resource), n in sorted(requests.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        table.add(resource, verb, int(n), f"{n / per:.2f}")
    total = sum(requests.values())
    table.add("all", "", int(total), f"{total / per:.2f}")
    return table


# ----------------------------------------------------------------- throughput


def throughput(cluster: Cluster, count: int, mode: str, timeout: float) -> Report:
    with Bench(cluster, f"throughput {mode}") as bench:
        bench.add_workflow(workflow_manifest("single", "single", True, driver_mode=mode))
        runs = [run_manifest(f"r-{i:05d}", "single", i) for i in range(count)]
        api_before, op_before = cluster.raw_metrics(), bench.operator.scrape()
        window = CpuWindow(bench.operator.pid)
        started = time.time()
        create_runs(cluster, bench.namespace, runs)
        created = time.time() - started
        print(f"[{bench.label}] {count} runs created in {created:.1f} s", flush=True)
        finished = wait_runs(bench, {r["metadata"]["name"] for r in runs}, started + timeout)
        cpu = window.close()  # the runs' work; what follows is clean-up
        bench.wait_pods_gone()
        api_after, op_after = cluster.raw_metrics(), bench.operator.scrape()
        changes = bench.changes(started, time.time())
        stats = bench.operator.stats()
        bench.note_others()
        bodies = cluster.json("get", "fxrun", "-n", bench.namespace)["items"]
        return throughput_report(
            ThroughputData(
                count=count,
                mode=mode,
                started=started,
                created=created,
                finished=finished,
                runs=bench.run_rows(),
                pods=bench.pod_rows(),
                bodies=bodies,
                writes=api_writes(api_before, api_after),
                watch_events=watch_events(api_before, api_after),
                changes=changes,
                requests=operator_requests(op_before, op_after),
                stats=stats,
                cpu=cpu,
                notes=bench.notes(),
                commit=bench.commit,
            )
        )


def wait_runs(bench: Bench, names: set[str], deadline: float) -> bool:
    """Until every run is final (True) or the deadline passed (False); prints progress."""
    last = time.monotonic()
    while True:
        runs = bench.run_rows()
        phases = Counter(runs[n].phase if n in runs else "<unseen>" for n in names)
        if sum(phases[p] for p in FINAL) == len(names):
            return True
        bench.list_runs_if_quiet()
        if time.time() > deadline:
            print(f"[{bench.label}] TIMED OUT; phases: {dict(phases)}", flush=True)
            return False
        if time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            print(f"[{bench.label}] {time.strftime('%H:%M:%S')} phases: {dict(phases)}", flush=True)
        time.sleep(1)


@dataclass
class ThroughputData:
    count: int
    mode: str
    started: float
    created: float
    finished: bool
    runs: dict[str, RunTimes]
    pods: dict[str, PodTimes]
    bodies: list[dict[str, Any]]
    writes: dict[tuple[str, ...], float]
    changes: dict[tuple[str, str], int]
    requests: dict[tuple[str, ...], float]
    stats: ProcessStats
    cpu: CpuUse
    notes: list[str] = field(default_factory=list)
    commit: str = "?"
    watch_events: dict[str, float] = field(default_factory=dict)


def throughput_report(data: ThroughputData) -> Report:
    report = Report(
        f"throughput-{data.mode.lower()}",
        f"Throughput: {data.count} single-task runs created at once, driverMode {data.mode}",
        commit=data.commit,
    )
    phases = Counter(str((b.get("status") or {}).get("phase") or "<none>") for b in data.bodies)
    succeeded = phases["Succeeded"]
    finals = [t.final_at for t in data.runs.values() if t.final_at is not None]
    elapsed = (max(finals) - data.started) if finals else None
    written = writes_done(data.writes)
    total_writes = sum(written.values())
    summary = Table("Summary", ("figure", "value", "target"))
    summary.add("runs succeeded / failed / other", _outcomes(phases, data.count), "")
    summary.add("time to create all runs", seconds(data.created), "")
    summary.add("first create -> last final phase", seconds(elapsed), "")
    rate = succeeded / elapsed * 60 if elapsed else 0.0
    # Issue 17's targets: PerRun (a driver pod per run) >= 300, Shared >= 2000.
    target = ">= 300" if data.mode == "PerRun" else ">= 2000"
    summary.add("runs per minute (succeeded)", f"{rate:.0f}", target)
    if data.mode == "PerRun":
        bound = os.environ.get(
            "FLUX_MAX_DRIVER_PODS", f"{OperatorConfig.max_driver_pods} (default)"
        )
        summary.add("driver pods at once, at most (FLUX_MAX_DRIVER_PODS)", bound, "")
    summary.add("API writes per run (API server, all clients)", _per(total_writes, data), "<= 10")
    no_events = sum(n for key, n in written.items() if key[0] != "events")
    summary.add("API writes per run, events left out", _per(no_events, data), "")
    refused = sum(data.writes.values()) - total_writes
    summary.add("write requests refused per run (nothing stored)", _per(refused, data), "")
    summary.add(
        "writes seen in the namespace per run", _per(namespace_writes(data.changes), data), ""
    )
    summary.add(
        "watch events sent per run (API server, every watcher)",
        _per(sum(data.watch_events.values()), data),
        "",
    )
    summary.add("operator requests per run", f"{sum(data.requests.values()) / data.count:.1f}", "")
    operator_cpu = data.cpu.seconds["operator"]
    summary.add("operator CPU during the scenario", seconds(operator_cpu), "")
    summary.add("operator CPU per run", f"{operator_cpu / data.count * 1000:.0f} ms", "")
    summary.add("operator peak RSS (VmHWM)", mib(data.stats.peak_rss_bytes), "<= 250 MiB")
    drivers = [p for p in data.pods.values() if p.role in ("driver", "shared-driver")]
    summary.add("driver pods started", len(drivers), "")
    summary.add(
        "most driver pods at once", peak_concurrency([(p.added, p.end) for p in drivers]), ""
    )
    running = [(p.running, p.end) for p in drivers if p.running is not None]
    summary.add("most driver containers running at once", peak_concurrency(running), "")
    report.tables += [summary, stage_table(data), cpu_table(data.cpu)]
    report.tables.append(writes_table(data.writes, data.count))
    report.tables.append(changes_table(data.changes, data.count))
    report.tables.append(watch_events_table(data.watch_events, data.count))
    report.tables.append(requests_table(data.requests, data.count, "run"))
    if not data.finished:
        report.notes.append(f"TIMED OUT: not every run was final; phases {dict(phases)}.")
    report.notes += _failures(data.bodies) + data.notes
    return report


def _per(n: float, data: ThroughputData) -> str:
    return f"{n / data.count:.1f}"


def namespace_writes(changes: dict[tuple[str, str], int]) -> int:
    """Writes the watches saw: every change of a run, ConfigMap or Event, and pods
    created and deleted (a pod's other changes are mostly its status, written by
    the kubelet, kwok and the scheduler)."""
    return sum(
        n
        for (resource, event), n in changes.items()
        if resource != "pods" or event in ("ADDED", "DELETED")
    )


def changes_table(changes: dict[tuple[str, str], int], per: int) -> Table:
    table = Table(
        "Changes seen in the benchmark's namespace (watch events: this namespace only)",
        ("resource", "ADDED", "MODIFIED", "DELETED", "per run"),
    )
    for resource in ("workflowruns", "pods", "configmaps", "events"):
        counts = [changes.get((resource, e), 0) for e in ("ADDED", "MODIFIED", "DELETED")]
        table.add(resource, *counts, f"{sum(counts) / per:.2f}")
    return table


def _outcomes(phases: Counter[str], count: int) -> str:
    other = count - phases["Succeeded"] - phases["Failed"]
    return f"{phases['Succeeded']} / {phases['Failed']} / {other}"


def _failures(bodies: list[dict[str, Any]], shown: int = 3) -> list[str]:
    failed = [b for b in bodies if (b.get("status") or {}).get("phase") == "Failed"]
    return [
        f"failed run {b['metadata']['name']}: {json.dumps((b.get('status') or {}).get('error'))}"
        for b in failed[:shown]
    ]


def _history_time(body: dict[str, Any], kind: str) -> float | None:
    for event in (body.get("status") or {}).get("history") or []:
        if event.get("type") == kind:
            return dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    return None


def stage_table(data: ThroughputData) -> Table:
    """Where a run's time goes: each stage's duration over all runs (seconds)."""
    first: dict[tuple[str, str], PodTimes] = {}
    for pod in sorted(data.pods.values(), key=lambda p: p.added):
        first.setdefault((pod.run, pod.role), pod)
    stages: dict[str, list[float]] = {}
    for body in data.bodies:
        name = body["metadata"]["name"]
        run = data.runs.get(name)
        if run is None:
            continue
        points = _stage_points(run, body, first.get((name, "driver")), first.get((name, "task")))
        for label, start, end in points:
            if start is not None and end is not None:
                stages.setdefault(label, []).append(end - start)
    table = Table(
        "Where a run's time goes (seconds, over all runs)", ("stage", "median", "p90", "max")
    )
    for label, values in stages.items():
        table.add(
            label,
            f"{statistics.median(values):.2f}",
            f"{percentile(values, 0.9):.2f}",
            f"{max(values):.2f}",
        )
    return table


def _stage_points(
    run: RunTimes, body: dict[str, Any], driver: PodTimes | None, task: PodTimes | None
) -> list[tuple[str, float | None, float | None]]:
    """(stage, start, end) of one run; a run of the shared driver has no driver pod."""
    began = _history_time(body, "WORKFLOW_STARTED")
    points: list[tuple[str, float | None, float | None]]
    if driver is not None:
        points = [
            ("run created -> driver pod created", run.added, driver.added),
            ("driver pod created -> container running", driver.added, driver.running),
            ("driver running -> WORKFLOW_STARTED recorded", driver.running, began),
        ]
    else:
        points = [("run created -> WORKFLOW_STARTED recorded", run.added, began)]
    task_added = task.added if task else None
    task_finished = task.finished if task else None
    return [
        *points,
        ("WORKFLOW_STARTED -> task pod created", began, task_added),
        ("task pod created -> finished (kwok)", task_added, task_finished),
        ("task pod finished -> run final", task_finished, run.final_at),
        ("run created -> run final (total)", run.added, run.final_at),
    ]


# ------------------------------------------------------------- one-run scenarios


@dataclass
class OneRun:
    """One large run: what it is and what came of it."""

    label: str
    function: str
    value: Any
    tasks: int
    simulated: bool = True
    parallelism: int | None = None
    phase: str = "<none>"
    elapsed: float | None = None
    timed_out: bool = False
    largest: int = 0
    largest_made_of: str = ""
    final_size: int = 0
    configmaps: dict[str, int] = field(default_factory=dict)
    stats: ProcessStats | None = None
    cpu: CpuUse | None = None
    requests: dict[tuple[str, ...], float] = field(default_factory=dict)
    pods: dict[str, PodTimes] = field(default_factory=dict)
    started: float = 0.0
    error: Any = None
    notes: list[str] = field(default_factory=list)
    commit: str = "?"


def one_run(cluster: Cluster, spec: OneRun, timeout: float) -> OneRun:
    """Runs `spec` in a bench of its own and fills in its figures."""
    workflow = spec.function.replace("_", "-")
    name = f"{workflow}-1"
    with Bench(cluster, spec.label) as bench:
        bench.add_workflow(
            workflow_manifest(workflow, spec.function, spec.simulated, spec.parallelism)
        )
        op_before = bench.operator.scrape()
        window = CpuWindow(bench.operator.pid)
        poller = SizePoller(cluster, bench.namespace, name)
        spec.started = time.time()
        cluster.out(
            "create", "-n", bench.namespace, "-f", "-",
            input=json.dumps(run_manifest(name, workflow, spec.value)),
        )  # fmt: skip
        poller.start()
        try:
            spec.timed_out = not wait_one(bench, poller, name, spec.started + timeout)
        finally:
            poller.stop()
        spec.cpu = window.close()
        _collect(bench, spec, name, poller, op_before)
    return spec


def wait_one(bench: Bench, poller: SizePoller, name: str, deadline: float) -> bool:
    last = time.monotonic()
    while True:
        run = bench.run_rows().get(name)
        if run is not None and run.phase in FINAL:
            return True
        bench.list_runs_if_quiet()
        if time.time() > deadline:
            print(f"[{bench.label}] TIMED OUT; {_progress(bench, poller, name)}", flush=True)
            return False
        if time.monotonic() - last >= PROGRESS_EVERY:
            last = time.monotonic()
            print(
                f"[{bench.label}] {time.strftime('%H:%M:%S')} {_progress(bench, poller, name)}",
                flush=True,
            )
        time.sleep(1)


def _progress(bench: Bench, poller: SizePoller, name: str) -> str:
    pods = [p for p in bench.pod_rows().values() if p.role == "task"]
    done = sum(p.finished is not None for p in pods)
    return (
        f"phase {poller.phase}, size {kib(poller.last)} (largest {kib(poller.largest)}), "
        f"task pods: {len(pods)} created, {done} finished"
    )


def _collect(bench: Bench, spec: OneRun, name: str, poller: SizePoller, op_before: str) -> None:
    run = bench.run_rows().get(name)
    if run is not None and run.final_at is not None:
        spec.elapsed = run.final_at - spec.started
    spec.phase, spec.largest, spec.final_size = poller.phase, poller.largest, poller.last
    spec.largest_made_of = poller.largest_made_of
    body = bench.cluster.json("get", "fxrun", name, "-n", bench.namespace)
    spec.error = (body.get("status") or {}).get("error")
    roles = bench.cluster.out(
        "get", "configmaps", "-n", bench.namespace, "-l", f"flux.dev/run={name}",
        "-o", r"custom-columns=ROLE:.metadata.labels.flux\.dev/role", "--no-headers",
    ).split()  # fmt: skip
    spec.configmaps = dict(Counter(roles))
    spec.stats = bench.operator.stats()
    spec.requests = operator_requests(op_before, bench.operator.scrape())
    spec.pods = bench.pod_rows()
    spec.commit = bench.commit
    bench.note_others()
    spec.notes = bench.notes()


def one_run_table(title: str, results: list[OneRun]) -> Table:
    table = Table(title, ("figure", *(r.label for r in results)))
    rows: list[tuple[str, Any]] = [
        ("phase", lambda r: r.phase + (" (TIMED OUT)" if r.timed_out else "")),
        ("task calls", lambda r: r.tasks),
        ("create -> final phase", lambda r: seconds(r.elapsed)),
        ("largest stored size of the run (budget 256 KiB)", lambda r: kib(r.largest)),
        ("final stored size", lambda r: kib(r.final_size)),
        ("owned ConfigMaps", _configmaps),
        ("operator peak RSS (VmHWM)", lambda r: mib(r.stats.peak_rss_bytes) if r.stats else "-"),
        (
            "operator CPU during the run",
            lambda r: seconds(r.cpu.seconds["operator"]) if r.cpu else "-",
        ),
        ("operator API requests", lambda r: int(sum(r.requests.values()))),
        ("task pods", lambda r: len(_task_pods(r))),
        ("most task pods existing at once", lambda r: peak_concurrency(_spans(r))),
        ("create -> first task pod", lambda r: _since(r, _first_pod(r))),
        ("first task pod -> last finished", _pod_window),
        ("task pods finished per second", _pod_rate),
        ("  time no task pod was running in between", _pod_idle),
        ("last task pod finished -> final", lambda r: _last_to_final(r)),
    ]
    for label, value in rows:
        table.add(label, *(value(r) for r in results))
    return table


def _task_pods(r: OneRun) -> list[PodTimes]:
    return [p for p in r.pods.values() if p.role == "task"]


def _spans(r: OneRun) -> list[tuple[float, float | None]]:
    return [(p.added, p.end) for p in _task_pods(r)]


def _first_pod(r: OneRun) -> float | None:
    return min((p.added for p in _task_pods(r)), default=None)


def _last_finished(r: OneRun) -> float | None:
    return max((p.finished for p in _task_pods(r) if p.finished is not None), default=None)


def _since(r: OneRun, t: float | None) -> str:
    return seconds(None if t is None else t - r.started)


def _pod_window(r: OneRun) -> str:
    first, last = _first_pod(r), _last_finished(r)
    return seconds(None if first is None or last is None else last - first)


def _pod_idle(r: OneRun) -> str:
    """Time between the first task pod's start and the last one's end when none ran."""
    spans = [(p.added, p.finished) for p in _task_pods(r) if p.finished is not None]
    if not spans:
        return "-"
    return seconds(uncovered(spans, min(s for s, _ in spans), max(e for _, e in spans)))


def _pod_rate(r: OneRun) -> str:
    first, last = _first_pod(r), _last_finished(r)
    if first is None or last is None or last <= first:
        return "-"
    return f"{len(_task_pods(r)) / (last - first):.1f}"


def _last_to_final(r: OneRun) -> str:
    last = _last_finished(r)
    if last is None or r.elapsed is None:
        return "-"
    return seconds(r.started + r.elapsed - last)


def _configmaps(r: OneRun) -> str:
    if not r.configmaps:
        return "0"
    parts = ", ".join(
        f"{n} {role.removeprefix('archive-')}" for role, n in sorted(r.configmaps.items())
    )
    return f"{sum(r.configmaps.values())} ({parts})"


def one_run_report(key: str, title: str, results: list[OneRun]) -> Report:
    commits = ", ".join(dict.fromkeys(r.commit for r in results))
    report = Report(key, title, [one_run_table("Figures", results)], commit=commits)
    for r in results:
        if r.cpu is not None:
            report.tables.append(cpu_table(r.cpu))
            report.tables[-1].title += f": {r.label}"
        tasks = max(r.tasks, 1)
        report.tables.append(requests_table(r.requests, tasks, "task call"))
        report.tables[-1].title += f": {r.label}"
        if r.largest_made_of:
            report.notes.append(f"{r.label} at its largest ({kib(r.largest)}): {r.largest_made_of}")
        if r.error:
            report.notes.append(f"{r.label} failed: {json.dumps(r.error)}")
        report.notes += [n for n in r.notes if n not in report.notes]
    return report


def fanout(cluster: Cluster, map_items: int, parallel_tasks: int, timeout: float) -> Report:
    specs = []
    if map_items:
        specs.append(OneRun(f"map({map_items})", "fan_map", map_items, map_items))
    if parallel_tasks:
        specs.append(
            OneRun(f"parallel({parallel_tasks})", "fan_parallel", parallel_tasks, parallel_tasks)
        )
    results = [one_run(cluster, spec, timeout) for spec in specs]
    title = "Fan-out: " + " and ".join(r.label for r in results) + " of a no-op task"
    return one_run_report("fanout", title, results)


def batched(cluster: Cluster, items: int, size: int, parallelism: int, timeout: float) -> Report:
    spec = OneRun(
        f"map({items}, batch_size={size})",
        "batched",
        {"items": items, "batch": size},
        items,
        simulated=False,
        parallelism=parallelism,
    )
    result = one_run(cluster, spec, timeout)
    title = f"Batched: map over {items} items, {size} per pod, real task pods"
    report = one_run_report("batched", title, [result])
    report.notes.insert(0, f"Workflow spec.parallelism {parallelism}: batch pods at once.")
    return report


# ------------------------------------------------------------------------ CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--throughput", action="store_true", help="the throughput scenario")
    parser.add_argument("--fanout", action="store_true", help="the fan-out scenario")
    parser.add_argument("--batched", action="store_true", help="the batched-map scenario")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--driver-modes",
        default="PerRun,Shared",
        help="the throughput scenario once per Workflow spec.driverMode given",
    )
    parser.add_argument("--map-items", type=int, default=10_000)
    parser.add_argument("--parallel-tasks", type=int, default=1000)
    parser.add_argument("--batch-items", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-parallelism", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per scenario run")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each scenario, wait up to this long until no e2e-*/chart-* namespace "
        "has existed for 30 s (other workloads inflate the API server's counts)",
    )
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument(
        "--max-driver-pods",
        type=int,
        help="the operator's FLUX_MAX_DRIVER_PODS (per-run driver pods at once); "
        "default: the operator's",
    )
    parser.add_argument("--kubeconfig")
    parser.add_argument("--kubectl")
    parser.add_argument("--image")
    args = parser.parse_args(argv)
    if not (args.throughput or args.fanout or args.batched):
        args.throughput = args.fanout = args.batched = True
    return args


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C: namespaces are deleted and the operator stopped."""
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = parse_args()
    if args.max_driver_pods is not None:
        # The operator process inherits this environment.
        os.environ["FLUX_MAX_DRIVER_PODS"] = str(args.max_driver_pods)
    cluster = Cluster.resolve(args.kubeconfig, args.kubectl, args.image)
    cluster.apply_crds()
    scenarios: list[Callable[[], Report]] = []
    for mode in args.driver_modes.split(",") if args.throughput else []:
        scenarios.append(functools.partial(throughput, cluster, args.runs, mode, args.timeout))
    if args.fanout:
        scenarios.append(lambda: fanout(cluster, args.map_items, args.parallel_tasks, args.timeout))
    if args.batched:
        scenarios.append(
            lambda: batched(
                cluster, args.batch_items, args.batch_size, args.batch_parallelism, args.timeout
            )
        )
    for scenario in scenarios:
        if args.wait_quiet:
            print(f"waiting up to {args.wait_quiet:.0f} s for the cluster to be quiet ...")
            if not wait_quiet(cluster, args.wait_quiet):
                print("other workloads still running; going ahead", flush=True)
        report = scenario()
        print("\n" + render_text(report) + "\n", flush=True)
        if args.write_results:
            write_results([report])
            print(f"{RESULTS} updated", flush=True)


if __name__ == "__main__":
    main()
