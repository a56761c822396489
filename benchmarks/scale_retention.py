"""Retention benchmark (issue 15) on the local test cluster: 1,000 finished
runs expire together; are they deleted at a steady rate?

The runs (one task each on the simulated node, driverMode Shared) finish under
one operator; each keeps its output (over the inline budget) in a ConfigMap it
owns. That operator stops; a new one starts with
FLUX_RUN_TTL_SECONDS_AFTER_FINISHED=0, so every run has expired when it lists
them, as after an outage. Figures: the time from its start until the last run
and ConfigMap are gone, the writes seen in the namespace per second (every
deletion, the garbage collector's included, is one watch event: max and p50
over 1 s windows), the API server's write counts and the operator's requests.

    .venv/bin/python benchmarks/scale_retention.py [--runs 1000] [--rates 10]
        [--timeout 1800] [--write-results] [--kubeconfig PATH --kubectl PATH --image IMAGE]

With --write-results, the figures replace the retention section of
benchmarks/RESULTS.md. Run it alone (it serves bench-* as scale.py does).
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import time
from collections import Counter
from typing import Any

from k8s_bench import Cluster, OperatorProcess, samples
from scale import (
    SIMULATED,
    Bench,
    api_writes,
    create_runs,
    operator_requests,
    run_manifest,
    writes_done,
    writes_table,
)
from scale_report import Report, Table, render_text, seconds, write_results

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow


@task
def noop(i: int) -> None:
    return None


@workflow
async def kept(ctx: WorkflowExecutionContext[int]) -> str:
    await noop(ctx.input)
    return "x" * 20_000
"""


def workflow() -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "kept"},
        "spec": {
            "source": SOURCE,
            "function": "kept",
            "driverMode": "Shared",
            "taskDefaults": SIMULATED,
        },
    }


def _phases(cluster: Cluster, namespace: str) -> Counter[str]:
    out = cluster.out(
        "get", "fxrun", "-n", namespace, "--no-headers", "-o", "custom-columns=P:.status.phase"
    )
    return Counter(out.split())


def _wait_final(cluster: Cluster, namespace: str, count: int, deadline: float) -> bool:
    """Until every run is final (read from the API: a watch may miss the last change)."""
    while time.time() < deadline:
        phases = _phases(cluster, namespace)
        print(f"{time.strftime('%H:%M:%S')} phases: {dict(phases)}", flush=True)
        if sum(phases[p] for p in ("Succeeded", "Failed", "Cancelled")) == count:
            return True
        time.sleep(10)
    return False


def _left(cluster: Cluster, namespace: str) -> tuple[int, int]:
    runs = cluster.out("get", "fxrun", "-n", namespace, "-o", "name").split()
    maps = cluster.out(
        "get", "configmaps", "-n", namespace, "-l", "flux.dev/run", "-o", "name"
    ).split()
    return len(runs), len(maps)


def retention(cluster: Cluster, count: int, rate: float, timeout: float) -> Report:
    with Bench(cluster, f"retention {rate:g}/s") as bench:
        bench.add_workflow(workflow())
        runs = [run_manifest(f"r-{i:05d}", "kept", i) for i in range(count)]
        started = time.time()
        create_runs(cluster, bench.namespace, runs)
        finished = _wait_final(cluster, bench.namespace, count, started + timeout)
        bench.wait_pods_gone()
        phases = _phases(cluster, bench.namespace)
        runs_before, maps_before = _left(cluster, bench.namespace)
        label = bench.label
        print(f"[{label}] {runs_before} runs, {maps_before} ConfigMaps; restarting", flush=True)
        bench.operator.stop()
        bench.operator = OperatorProcess(
            cluster,
            watch="bench-*",
            env={
                "FLUX_RUN_TTL_SECONDS_AFTER_FINISHED": "0",
                "FLUX_RETENTION_DELETES_PER_SECOND": f"{rate:g}",
            },
        )
        api_before = cluster.raw_metrics()
        t0 = time.time()
        bench.operator.start()
        left = (runs_before, maps_before)
        while left != (0, 0) and time.time() < t0 + timeout:
            time.sleep(1)
            left = _left(cluster, bench.namespace)
        t1 = time.time()
        time.sleep(2)  # the watches catch up
        api_after, op_after = cluster.raw_metrics(), bench.operator.scrape()
        changes = [
            (resource, row)
            for resource, watch in bench.watches.items()
            for row in watch.snapshot()
            if t0 <= row.at <= t1 + 2
        ]
        expired = sum(samples(op_after, "flux_runs_expired_total").values())
        report = Report(
            f"retention-{rate:g}",
            f"Retention: {count} finished runs expire together, "
            f"{rate:g} deletions a second at most",
            commit=bench.commit,
        )
        per_second = _per_second([row.at for _, row in changes])
        summary = Table("Summary", ("figure", "value", "target"))
        summary.add("runs finished before the restart", f"{dict(phases)}", "")
        before = f"{runs_before} / {maps_before}"
        summary.add("runs / their ConfigMaps before the restart", before, "")
        summary.add("runs / ConfigMaps left at the end", f"{left[0]} / {left[1]}", "0 / 0")
        summary.add("operator start -> last run and ConfigMap gone", seconds(t1 - t0), "")
        summary.add("runs deleted by the operator (flux_runs_expired_total)", f"{expired:.0f}", "")
        peak = max(per_second, default=0)
        summary.add("writes seen in the namespace per second, max", f"{peak}", "")
        p50 = statistics.median(per_second) if per_second else 0
        summary.add("writes seen in the namespace per second, p50", f"{p50:g}", "")
        written = writes_done(api_writes(api_before, api_after))
        summary.add("API writes (API server, all clients)", f"{sum(written.values()):.0f}", "")
        report.tables.append(summary)
        kinds = Counter((resource, row.event) for resource, row in changes)
        seen = Table("Writes seen in the namespace (watch events)", ("resource", "event", "count"))
        for (resource, event), n in sorted(kinds.items()):
            seen.add(resource, event, n)
        report.tables.append(seen)
        report.tables.append(writes_table(api_writes(api_before, api_after), count))
        requests = operator_requests("", op_after)
        table = Table("The restarted operator's API requests", ("verb", "resource", "count"))
        for (verb, resource), n in sorted(requests.items()):
            table.add(verb, resource, f"{n:.0f}")
        report.tables.append(table)
        if not finished:
            report.notes.append(f"TIMED OUT before every run finished: {dict(phases)}")
        report.notes.append(
            "Per-second figures: watch events of the namespace's runs, pods, ConfigMaps "
            "and Events in 1 s windows from the first to the last, the garbage "
            "collector's deletions of the ConfigMaps included."
        )
        report.notes += bench.notes()
        return report


def _per_second(times: list[float]) -> list[int]:
    """Events in each 1 s window from the first event to the last (empty windows too)."""
    if not times:
        return []
    first = min(times)
    bins = Counter(math.floor(t - first) for t in times)
    return [bins.get(i, 0) for i in range(max(bins) + 1)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--rates", default="10", help="FLUX_RETENTION_DELETES_PER_SECOND values, one run each"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per wait")
    parser.add_argument("--write-results", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--kubectl")
    parser.add_argument("--image")
    return parser.parse_args(argv)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    args = parse_args()
    cluster = Cluster.resolve(args.kubeconfig, args.kubectl, args.image)
    cluster.apply_crds()
    for rate in (float(r) for r in args.rates.split(",")):
        report = retention(cluster, args.runs, rate, args.timeout)
        print("\n" + render_text(report) + "\n", flush=True)
        if args.write_results:
            write_results([report])


if __name__ == "__main__":
    main()
