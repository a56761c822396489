"""Where the time of a step goes on a real cluster, stage by stage.

Runs a sequential workflow of no-op tasks (``--steps``, 50 by default) once per
driver mode (PerRun, then Shared) and, for every step after the first, splits
the time from the previous task's exit to this task's exit into stages:

- ``kubelet reports exit``: the previous task body returned -> its pod seen
  terminated (Python's exit, the kubelet noticing, the status update);
- ``operator records outcome``: -> the run seen with the call's record settled
  (the operator's watch delivery, its pass, its status write);
- ``driver records next call``: -> the run seen with this call's TASK_STARTED
  (the driver's watch delivery, replay, its status write);
- ``operator creates pod``: -> this call's pod seen created;
- ``scheduler binds``: -> the pod seen with a node;
- ``sandbox, container start``: -> the task's process started (read inside
  the container from /proc, 10 ms resolution);
- ``python start, imports``: -> the task body started;
- ``task body``: -> the body returned.

Watch events are timestamped when this process receives them, in-container
times come from the task itself; both use this machine's wall clock, which the
local test cluster's node shares (on a remote cluster the in-container stages
would need synchronised clocks). The operator's share is the sum of its two
stages; the driver's is its one.

    .venv/bin/python benchmarks/step_latency.py [--steps 50] [--modes PerRun,Shared]
        [--kubeconfig PATH] [--image IMAGE]

With no --kubeconfig it uses the local test cluster (make cluster-up) and its
runtime image (make image). It starts the operator itself, in a fresh namespace
that it deletes at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from flux.k8s.kube import PODS, RUNS
from flux.k8s.kube.http import KubeClient, connect
from flux.k8s.kube.watch import Listed, follow
from flux.k8s.labels import ANNOTATION_CALL_ID, LABEL_ROLE, LABEL_RUN
from k8s_bench import (
    Cluster,
    OperatorProcess,
    create_namespace,
    delete_namespaces,
    percentile,
    wait_for_other_benchmarks,
)

SOURCE = '''
import os
import time

from flux import WorkflowExecutionContext, task, workflow


def _process_start() -> float:
    """When this process started, on the wall clock (from /proc: 10 ms ticks)."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as stat:
        started = int(stat.read().rsplit(")", 1)[1].split()[19]) / ticks
    with open("/proc/uptime") as uptime:
        up = float(uptime.read().split()[0])
    return time.time() - (up - started)


@task
def noop(i: int) -> dict:
    began = time.time()
    return {"i": i, "process": _process_start(), "began": began, "ended": time.time()}


@workflow
async def steps(ctx: WorkflowExecutionContext[int]) -> int:
    total = 0
    for i in range(ctx.input):
        total += (await noop(i))["i"]
    return total
'''

STAGES = (
    "kubelet reports exit",
    "operator records outcome",
    "driver records next call",
    "operator creates pod",
    "scheduler binds",
    "sandbox, container start",
    "python start, imports",
    "task body",
)


@dataclass
class Seen:
    """Receive times (wall clock) of what the watches showed, by call id."""

    pod_created: dict[str, float] = field(default_factory=dict)
    pod_bound: dict[str, float] = field(default_factory=dict)
    pod_exited: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    phase: str = ""


def note_run(seen: Seen, body: dict[str, Any], now: float) -> None:
    status = body.get("status") or {}
    seen.phase = status.get("phase") or seen.phase
    for event in status.get("history") or []:
        call = event.get("sourceId")
        if event.get("type") == "TASK_STARTED" and call not in seen.started:
            seen.started[call] = now
            seen.order.append(call)
        if event.get("type") == "TASK_COMPLETED" and isinstance(event.get("value"), dict):
            seen.outputs.setdefault(call, event["value"])
    for record in status.get("tasks") or []:
        if record.get("state") == "Completed":
            seen.recorded.setdefault(record["callId"], now)
            if isinstance(record.get("output"), dict):
                seen.outputs.setdefault(record["callId"], record["output"])


def note_pod(seen: Seen, kind: str, pod: dict[str, Any], now: float) -> None:
    call = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CALL_ID)
    if call is None:
        return
    seen.pod_created.setdefault(call, now)
    if (pod.get("spec") or {}).get("nodeName"):
        seen.pod_bound.setdefault(call, now)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = (statuses[0].get("state") or {}) if statuses else {}
    if state.get("terminated") or kind == "DELETED":
        seen.pod_exited.setdefault(call, now)


async def watch(namespace: str, run: str, deadline: float) -> Seen:
    seen = Seen()
    kube = KubeClient(await connect())
    done = asyncio.Event()

    async def runs() -> None:
        async for change in follow(kube, RUNS, namespace, field_selector=f"metadata.name={run}"):
            now = time.time()
            bodies = change.items if isinstance(change, Listed) else [change["object"]]
            for body in bodies:
                note_run(seen, body, now)
            if seen.phase in ("Succeeded", "Failed"):
                done.set()
                return

    async def pods() -> None:
        selector = f"{LABEL_RUN}={run},{LABEL_ROLE}=task"
        async for change in follow(kube, PODS, namespace, label_selector=selector):
            now = time.time()
            if isinstance(change, Listed):
                for pod in change.items:
                    note_pod(seen, "ADDED", pod, now)
            else:
                note_pod(seen, change["type"], change["object"], now)

    tasks = [asyncio.create_task(runs()), asyncio.create_task(pods())]
    try:
        await asyncio.wait_for(done.wait(), deadline - time.monotonic())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await kube.close()
    return seen


def stages(seen: Seen) -> dict[str, list[float]]:
    """Milliseconds per stage, one value per step that has a previous step."""
    found: dict[str, list[float]] = {stage: [] for stage in STAGES}
    found["step"] = []
    for previous, call in itertools.pairwise(seen.order):
        inside, before = seen.outputs.get(call), seen.outputs.get(previous)
        points = (
            before and before.get("ended"),
            seen.pod_exited.get(previous),
            seen.recorded.get(previous),
            seen.started.get(call),
            seen.pod_created.get(call),
            seen.pod_bound.get(call),
            inside and inside.get("process"),
            inside and inside.get("began"),
            inside and inside.get("ended"),
        )
        if not all(isinstance(p, float) for p in points):
            continue
        times: list[float] = [float(p) for p in points if isinstance(p, float)]
        for stage, (a, b) in zip(STAGES, itertools.pairwise(times), strict=True):
            found[stage].append((b - a) * 1000)
        exited = seen.pod_exited.get(call)
        if exited is not None:
            found["step"].append((exited - times[1]) * 1000)
    return found


def run_mode(cluster: Cluster, namespace: str, mode: str, steps: int, timeout: float) -> Seen:
    name = f"steps-{mode.lower()}"
    workflow = {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"source": SOURCE, "function": "steps", "driverMode": mode},
    }
    cluster.apply(workflow, namespace)
    cluster.out(
        "wait", "-n", namespace, "--for=condition=Ready", "--timeout=60s", f"workflow/{name}"
    )
    run = {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": f"{name}-1"},
        "spec": {"workflowRef": {"name": name}, "input": steps},
    }
    cluster.apply(run, namespace)
    return asyncio.run(watch(namespace, f"{name}-1", time.monotonic() + timeout))


def table(results: dict[str, dict[str, list[float]]]) -> str:
    modes = list(results)
    head = "| stage | " + " | ".join(f"{m} p50 / p99 / max ms" for m in modes) + " |"
    lines = [head, "|---|" + "---|" * len(modes)]
    shares = {
        "operator share": ("operator records outcome", "operator creates pod"),
        "driver share": ("driver records next call",),
    }
    for stage in (*STAGES, "step", *shares):
        cells = []
        for mode in modes:
            found = results[mode]
            if stage in shares:
                parts = [found[s] for s in shares[stage]]
                values = [sum(v) for v in zip(*parts, strict=True)]
            else:
                values = found[stage]
            cells.append(_spread(values) if values else "-")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    return f"{p50:.0f} / {p99:.0f} / {max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--modes", default="PerRun,Shared")
    parser.add_argument("--kubeconfig")
    parser.add_argument("--kubectl")
    parser.add_argument("--image")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", help="also write the raw stage values here")
    args = parser.parse_args()
    cluster = Cluster.resolve(args.kubeconfig, args.kubectl, args.image)
    os.environ["FLUX_KUBECONFIG"] = cluster.kubeconfig  # for this process's watches
    cluster.apply_crds()
    wait_for_other_benchmarks(cluster, timeout=3600)
    namespace = create_namespace(cluster)
    # This namespace only (scale.py's operator serves bench-*; it waits for this one).
    operator = OperatorProcess(cluster, watch=namespace, metrics=False)
    results: dict[str, dict[str, list[float]]] = {}
    phases: dict[str, str] = {}
    try:
        operator.start()
        for mode in args.modes.split(","):
            started = time.monotonic()
            seen = run_mode(cluster, namespace, mode, args.steps, args.timeout)
            phases[mode] = f"{seen.phase} in {time.monotonic() - started:.1f} s"
            results[mode] = stages(seen)
    finally:
        delete_namespaces(cluster, [namespace])
        operator.stop()
    for mode, phase in phases.items():
        print(f"{mode}: run {phase}, {len(results[mode]['step'])} steps measured")
    print(table(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out)


if __name__ == "__main__":
    main()
