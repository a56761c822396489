"""Latency between the steps of a sequential workflow on a real cluster.

Runs a 20-step workflow of no-op tasks as a WorkflowRun and watches its pods.
For each step it reports:

- operator share: task pod k seen finished -> task pod k+1 seen created (the
  operator records the result, the driver replays and records the next call,
  the operator creates its pod);
- pod start: task pod seen created -> its container seen running (kubelet,
  containerd and the image's start-up).

Times are when this process received the watch events, so both sides of each
difference come from the same clock and the same stream.

    .venv/bin/python benchmarks/step_latency.py [--steps 20] [--kubeconfig PATH]
        [--image IMAGE]

With no --kubeconfig it uses the local test cluster (make cluster-up) and its
runtime image (make image). It starts the operator itself, in a fresh namespace
that it deletes at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time

from kubernetes_asyncio import client, config, watch

from k8s_bench import (
    Cluster,
    OperatorProcess,
    create_namespace,
    delete_namespaces,
    percentile,
    wait_for_other_benchmarks,
)

SOURCE = """
from flux import WorkflowExecutionContext, task, workflow


@task
def noop(i: int) -> int:
    return i


@workflow
async def steps(ctx: WorkflowExecutionContext[int]) -> int:
    total = 0
    for i in range(ctx.input):
        total += await noop(i)
    return total
"""


async def watch_run(
    kubeconfig: str, namespace: str, run: str, steps: int, deadline: float
) -> dict[str, dict[str, float]]:
    """pod name -> {'created', 'running', 'finished'} receive times (monotonic seconds)."""
    await config.load_kube_config(config_file=kubeconfig)
    seen: dict[str, dict[str, float]] = {}
    async with client.ApiClient() as api:
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        stream = watch.Watch()
        async with stream.stream(
            core.list_namespaced_pod,
            namespace,
            label_selector=f"flux.dev/run={run},flux.dev/role=task",
            timeout_seconds=int(deadline - time.monotonic()),
        ) as events:
            async for event in events:
                now = time.monotonic()
                pod = event["object"]
                times = seen.setdefault(pod.metadata.name, {})
                times.setdefault("created", now)
                statuses = pod.status.container_statuses or []
                state = statuses[0].state if statuses else None
                if state is not None and (state.running or state.terminated):
                    times.setdefault("running", now)
                if pod.status.phase in ("Succeeded", "Failed") or event["type"] == "DELETED":
                    times.setdefault("finished", now)
                done = [t for t in seen.values() if "finished" in t]
                if len(done) >= steps:
                    body = await custom.get_namespaced_custom_object(
                        "flux.dev", "v1alpha1", namespace, "workflowruns", run
                    )
                    if (body.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                        break
                if now > deadline:
                    raise TimeoutError("the run did not finish in time")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--kubeconfig")
    parser.add_argument("--kubectl")
    parser.add_argument("--image")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    cluster = Cluster.resolve(args.kubeconfig, args.kubectl, args.image)
    cluster.apply_crds()
    wait_for_other_benchmarks(cluster, timeout=3600)
    namespace = create_namespace(cluster)
    # This namespace only (scale.py's operator serves bench-*; it waits for this one).
    operator = OperatorProcess(cluster, watch=namespace, metrics=False)
    try:
        operator.start()
        workflow = {
            "apiVersion": "flux.dev/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "steps"},
            "spec": {"source": SOURCE, "function": "steps"},
        }
        run = {
            "apiVersion": "flux.dev/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": "steps-1"},
            "spec": {"workflowRef": {"name": "steps"}, "input": args.steps},
        }
        cluster.apply(workflow, namespace)
        cluster.out(
            "wait", "-n", namespace, "--for=condition=Ready", "--timeout=60s", "workflow/steps"
        )
        started = time.monotonic()
        cluster.apply(run, namespace)
        seen = asyncio.run(
            watch_run(cluster.kubeconfig, namespace, "steps-1", args.steps, started + args.timeout)
        )
        total = time.monotonic() - started
        status = cluster.json("get", "fxrun", "steps-1", "-n", namespace)["status"]
    finally:
        delete_namespaces(cluster, [namespace])
        operator.stop()
    pods = sorted(seen.values(), key=lambda t: t["created"])
    shares = [
        (b["created"] - a["finished"]) * 1000
        for a, b in itertools.pairwise(pods)
        if "finished" in a
    ]
    starts = [(p["running"] - p["created"]) * 1000 for p in pods if "running" in p]
    print(
        f"run phase {status['phase']}, output {status.get('output')}, {len(pods)} task pods, "
        f"{total:.1f} s in all"
    )
    print(f"{'':<22}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, values in (("operator share", shares), ("pod start", starts)):
        print(
            f"{label:<22}{statistics.median(values):>10.0f}{percentile(values, 0.99):>10.0f}"
            f"{max(values):>10.0f}"
        )


if __name__ == "__main__":
    main()
