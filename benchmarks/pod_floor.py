"""What one pod costs on the test cluster's real node, with no operator at all.

Creates ``--pods`` bare pods of the runtime image at once (restricted Pod
Security Standard, no service-account token, ``restartPolicy: Never``), each
running one Python command, waits until all have Succeeded and reports pods a
minute and CPU seconds a pod by component (machine, kubelet, containerd, API
server, the pods' own cgroup; the rest is runc, shims and CNI plugins).

It is the ceiling for any mode that starts one pod per run: PerRun drivers
cannot complete faster than this node starts and reaps pods that do nothing.
Two commands are compared by default: ``pass`` (the floor) and ``import
flux.runtime.driver_main`` (a driver pod's imports, without running one).

Run on the local cluster (``make cluster-up image``), under the cluster lock:
    .venv/bin/python benchmarks/pod_floor.py [--pods 100]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from typing import Any

from k8s_bench import (
    MACHINE,
    PODS,
    Cluster,
    cpu_by_component,
    create_namespace,
    delete_namespaces,
    wait_for_other_benchmarks,
)

COMMANDS = {"pass": "pass", "driver imports": "import flux.runtime.driver_main"}
SHOWN = (MACHINE, PODS, "kubelet", "containerd", "kube-apiserver", "etcd", "kube-scheduler")


def pod(name: str, image: str, command: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"flux.dev/bench": "pod-floor"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": ["-c", command],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                }
            ],
        },
    }


def measure(cluster: Cluster, namespace: str, count: int, command: str, timeout: float) -> dict:
    pods = {"apiVersion": "v1", "kind": "List", "items": []}
    pods["items"] = [pod(f"p-{i:04d}", cluster.image, command) for i in range(count)]
    before, started = cpu_by_component(os.getpid()), time.monotonic()
    cluster.out("create", "-n", namespace, "-f", "-", input=json.dumps(pods), timeout=300)
    phases: Counter[str] = Counter()
    while time.monotonic() - started < timeout:
        listed = cluster.json("get", "pods", "-n", namespace)["items"]
        phases = Counter(p.get("status", {}).get("phase", "?") for p in listed)
        if phases["Succeeded"] + phases["Failed"] >= count:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    after = cpu_by_component(os.getpid())
    cpu = {k: after[k] - before.get(k, 0.0) for k in SHOWN}
    cluster.out("delete", "pods", "--all", "-n", namespace, "--wait=true", timeout=600)
    return {"elapsed": elapsed, "phases": dict(phases), "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    if not 1 <= args.pods <= 500:
        parser.error("--pods must be between 1 and 500 (one node's pod limit is 110 at once)")
    cluster = Cluster.resolve(None, None, None)
    wait_for_other_benchmarks(cluster, timeout=3600)
    namespace = create_namespace(cluster, prefix="bench-floor")
    results = {}
    try:
        for label, command in COMMANDS.items():
            results[label] = measure(cluster, namespace, args.pods, command, args.timeout)
            print(f"[{label}] {results[label]['phases']} in {results[label]['elapsed']:.1f} s")
    finally:
        delete_namespaces(cluster, [namespace])
    print(f"\n{args.pods} pods created at once, each `python -c COMMAND`:\n")
    print("| | " + " | ".join(COMMANDS) + " |")
    print("|---|" + "---|" * len(COMMANDS))
    print(
        "| pods a minute | "
        + " | ".join(f"{args.pods / r['elapsed'] * 60:.0f}" for r in results.values())
        + " |"
    )
    for who in SHOWN:
        cells = [f"{r['cpu'][who] / args.pods:.2f}" for r in results.values()]
        print(f"| CPU s a pod: {who} | " + " | ".join(cells) + " |")
    cores = os.cpu_count() or 1
    cells = [f"{r['cpu'][MACHINE] / r['elapsed'] / cores:.0%}" for r in results.values()]
    print("| machine busy | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
