"""Shared pieces of the benchmarks that run against a real cluster.

The local test cluster (`make cluster-up`, `make image`), kubectl, fresh
namespaces like the e2e suite's (restricted Pod Security Standard, the driver's
RBAC), the operator as a local process (as tests/e2e/conftest.py starts it),
its CPU time and peak RSS from /proc, Prometheus text parsing, and watches of
kubectl's table output with receive times.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
DRIVER_RBAC = REPO / "deploy/driver-rbac.yaml"


def cluster_facts() -> dict[str, str]:
    """KUBECONFIG, KUBECTL, IMAGE, ... of the local test cluster."""
    out = subprocess.run(
        ["bash", str(REPO / "cluster/scripts/print-env.sh")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Cluster:
    """kubectl on one cluster, with its runtime image."""

    kubeconfig: str
    kubectl_path: str
    image: str

    @classmethod
    def resolve(
        cls, kubeconfig: str | None, kubectl_path: str | None, image: str | None
    ) -> Cluster:
        """The given settings, the local test cluster's for those not given."""
        facts = {} if kubeconfig and kubectl_path and image else cluster_facts()
        return cls(
            kubeconfig or facts["KUBECONFIG"],
            kubectl_path or facts["KUBECTL"],
            image or facts["IMAGE"],
        )

    def command(self, *args: str) -> list[str]:
        return [self.kubectl_path, "--kubeconfig", self.kubeconfig, *args]

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.command(*args), input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def out(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        return self.run(*args, input=input, timeout=timeout).stdout

    def json(self, *args: str, timeout: float = 120) -> Any:
        return json.loads(self.out(*args, "-o", "json", timeout=timeout))

    def apply(self, manifest: dict[str, Any], namespace: str) -> None:
        self.out("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def apply_crds(self) -> None:
        self.out("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
        self.out(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/workflows.flux.dev",
            "crd/workflowruns.flux.dev",
        )

    def raw_metrics(self) -> str:
        """The API server's own /metrics."""
        return self.out("get", "--raw", "/metrics")


def wait_until(what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------ namespaces


def create_namespace(cluster: Cluster, prefix: str = "bench") -> str:
    """A fresh namespace enforcing the restricted Pod Security Standard, with the
    driver's RBAC applied (as the e2e suite makes them)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    labels = {"flux.dev/bench": "true", "pod-security.kubernetes.io/enforce": "restricted"}
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }
    cluster.out("create", "-f", "-", input=json.dumps(namespace))
    cluster.out("apply", "-n", name, "-f", str(DRIVER_RBAC))
    # Pods are rejected until the service account controller made "default".
    wait_until(
        f"service account {name}/default",
        lambda: cluster.run("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=60,
    )
    return name


def delete_namespaces(cluster: Cluster, names: Iterable[str], timeout: float = 600) -> list[str]:
    """Deletes the namespaces and waits until they are gone; the ones still there."""
    names = list(names)
    if not names:
        return []
    cluster.run("delete", "namespace", *names, "--wait=false", check=False)
    deadline = time.monotonic() + timeout
    left = names
    while left and time.monotonic() < deadline:
        time.sleep(2)
        left = [n for n in left if cluster.run("get", "ns", n, check=False).returncode == 0]
    return left


def release_runs(cluster: Cluster, namespace: str) -> None:
    """Drops the finalizers of the namespace's WorkflowRuns (when no operator is left
    to release them), so that the namespace can go."""
    names = cluster.run("get", "fxrun", "-n", namespace, "-o", "name", check=False).stdout.split()
    for name in names:
        cluster.run(
            "patch", name, "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip


def other_namespaces(cluster: Cluster, prefixes: tuple[str, ...] = ("e2e-", "chart-")) -> list[str]:
    """Namespaces of other users of the cluster (the e2e suite, the chart test)."""
    names = cluster.out("get", "ns", "-o", "name").split()
    return [n.split("/", 1)[1] for n in names if n.split("/", 1)[1].startswith(prefixes)]


def wait_for_other_benchmarks(cluster: Cluster, timeout: float) -> None:
    """Until no bench-* namespace is left: another benchmark's operator would serve
    ours too (both serve bench-*). Raises TimeoutError when one stays."""
    if not other_namespaces(cluster, ("bench-",)):
        return
    print("another benchmark is running (bench-* namespaces); waiting for it ...", flush=True)
    wait_until(
        "the other benchmark's namespaces to go",
        lambda: not other_namespaces(cluster, ("bench-",)),
        timeout,
        interval=5,
    )


def wait_quiet(cluster: Cluster, timeout: float, quiet_for: float = 30) -> bool:
    """Until no other workload's namespace has existed for `quiet_for` seconds
    (True), or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if other_namespaces(cluster):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_for:
            return True
        time.sleep(2)
    return False


# -------------------------------------------------------------------- operator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ProcessStats:
    cpu_seconds: float
    peak_rss_bytes: int
    rss_bytes: int


def process_stats(pid: int) -> ProcessStats:
    """utime+stime and VmHWM/VmRSS of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(stat[11]) + int(stat[12])  # utime, stime (fields 14 and 15)
    status: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            status[key] = int(value.split()[0]) * 1024  # kB
    return ProcessStats(ticks / os.sysconf("SC_CLK_TCK"), status["VmHWM"], status["VmRSS"])


# Processes of the local cluster, by /proc/<pid>/comm (at most 15 characters).
CLUSTER_COMPONENTS = (
    "kube-apiserver",
    "etcd",
    "kubelet",
    "containerd",
    "kube-scheduler",
    "kube-controller",
    "kube-proxy",
    "kwok",
)
KUBEPODS_CPUACCT = Path("/sys/fs/cgroup/cpuacct/kubepods/cpuacct.usage")  # cgroup v1, ns
KUBEPODS_CPU_STAT = Path("/sys/fs/cgroup/kubepods.slice/cpu.stat")  # cgroup v2, usage_usec
MACHINE = "machine (all CPUs busy)"
PODS = "pods on the real node (kubepods cgroup)"
BENCHMARK = "this benchmark (and its kubectl)"


def cpu_by_component(operator_pid: int) -> dict[str, float]:
    """Cumulative CPU seconds of the machine, the cluster's processes, the pods on
    the real node, the operator and this benchmark; subtract two readings."""
    tick = os.sysconf("SC_CLK_TCK")
    found = dict.fromkeys(CLUSTER_COMPONENTS, 0.0)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            if comm in found:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                found[comm] += (int(stat[11]) + int(stat[12])) / tick
        except OSError:
            continue  # gone meanwhile
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in cpu[:8])
    found[MACHINE] = (user + nice + system + irq + softirq + steal) / tick
    found[PODS] = _kubepods_cpu()
    found["operator"] = process_stats(operator_pid).cpu_seconds
    mine = os.times()
    found[BENCHMARK] = mine.user + mine.system + mine.children_user + mine.children_system
    return found


@dataclass
class CpuUse:
    """CPU seconds by component over a window of `elapsed` seconds."""

    seconds: dict[str, float]
    elapsed: float

    @property
    def capacity(self) -> float:
        return self.elapsed * (os.cpu_count() or 1)


class CpuWindow:
    """CPU use by component from now until `close()`."""

    def __init__(self, operator_pid: int):
        self.pid = operator_pid
        self.started = time.monotonic()
        self.before = cpu_by_component(operator_pid)

    def close(self) -> CpuUse:
        after = cpu_by_component(self.pid)
        moved = {k: after[k] - self.before.get(k, 0.0) for k in after}
        return CpuUse(moved, time.monotonic() - self.started)


def _kubepods_cpu() -> float:
    if KUBEPODS_CPUACCT.exists():
        return int(KUBEPODS_CPUACCT.read_text()) / 1e9
    if KUBEPODS_CPU_STAT.exists():
        for line in KUBEPODS_CPU_STAT.read_text().splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
    return float("nan")


@dataclass
class OperatorProcess:
    """`python -m flux.k8s` on the cluster's kubeconfig, serving `watch` namespaces."""

    cluster: Cluster
    watch: str
    metrics: bool = True
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None
    log_path: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="flux-bench-")) / "operator.log"
    )

    def start(self) -> None:
        env = {
            **os.environ,
            "FLUX_KUBECONFIG": self.cluster.kubeconfig,
            "FLUX_DEFAULT_IMAGE": self.cluster.image,
            "FLUX_WATCH_NAMESPACES": self.watch,
            **self.env,
        }
        if self.metrics:
            self.port = free_port()
            env["FLUX_METRICS_PORT"] = str(self.port)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flux.k8s"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        if self.metrics:
            wait_until("the operator's metrics endpoint", self._serving, timeout=60)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _serving(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"the operator exited; its log:\n{self.log_tail()}")
        try:
            self.scrape()
        except OSError:
            return False
        return True

    def scrape(self) -> str:
        """Its /metrics (served on all interfaces by the operator; read on loopback)."""
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text: str = response.read().decode()
            return text

    def stats(self) -> ProcessStats:
        return process_stats(self.pid)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def errors(self, most: int = 3) -> list[str]:
        """The operator's most frequent error lines (handler failures and the API's
        messages), with how often each occurred."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        found: Counter[str] = Counter()
        for line in text.splitlines():
            if line.startswith("ERROR:") and "Task exception was never retrieved" not in line:
                found[line[:200]] += 1
            elif line.startswith("HTTP response body:") and '"message"' in line:
                message = line.split('"message":', 1)[1].split('","', 1)[0].strip('"')
                found[f"API: {message[:200]}"] += 1
        return [f"{n} x {line}" for line, n in found.most_common(most)]

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------ Prometheus

Labels = tuple[tuple[str, str], ...]


def samples(text: str, name: str) -> dict[Labels, float]:
    """Values of the samples called `name` (e.g. apiserver_request_total), by label set."""
    found: dict[Labels, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def increase(before: dict[Labels, float], after: dict[Labels, float]) -> dict[Labels, float]:
    """after - before per label set (counters), leaving out those that did not move."""
    moved = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in moved.items() if v > 0}


def summed(values: dict[Labels, float], *keys: str) -> dict[tuple[str, ...], float]:
    """Values summed over all labels but `keys`."""
    out: dict[tuple[str, ...], float] = {}
    for labels, value in values.items():
        as_dict = dict(labels)
        key = tuple(as_dict.get(k, "") for k in keys)
        out[key] = out.get(key, 0.0) + value
    return out


# ---------------------------------------------------------------------- watches


@dataclass(frozen=True)
class Row:
    """One watch event as kubectl printed it, with the time this process read it."""

    at: float  # time.time()
    event: str  # ADDED, MODIFIED, DELETED
    cells: tuple[str, ...]


RELISTED = "RELISTED"


class TableWatch:
    """`kubectl get KIND -w` with custom columns, read in a thread.

    kubectl decodes the objects (in Go), so a watch of thousands of pods costs
    this process only a line per event. A watch the server closes is reopened
    (it lists the current objects again as ADDED).
    """

    def __init__(self, cluster: Cluster, kind: str, namespace: str, columns: dict[str, str]):
        spec = ",".join(f"{k}:.object.{path}" for k, path in columns.items())
        self.args = [
            "get", kind, "-n", namespace, "-w", "--output-watch-events", "--no-headers",
            "-o", f"custom-columns=EVENT:.type,{spec}",
        ]  # fmt: skip
        self.rows: list[Row] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._cluster = cluster

    def start(self) -> TableWatch:
        self._thread.start()
        return self

    def _loop(self) -> None:
        seen: set[str] = set()
        while not self._stop.is_set():
            self._proc = subprocess.Popen(
                self._cluster.command(*self.args),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                parts = line.split()
                if len(parts) < 2:
                    continue
                event, cells = parts[0], tuple(parts[1:])
                if event == "ADDED" and cells[0] in seen:
                    event = RELISTED  # a reopened watch lists what it saw before
                if event == "DELETED":
                    seen.discard(cells[0])
                else:
                    seen.add(cells[0])
                with self._lock:
                    self.rows.append(Row(time.time(), event, cells))
            self._proc.wait()
            self._stop.wait(1)

    def snapshot(self) -> list[Row]:
        with self._lock:
            return list(self.rows)

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=10)
        self._thread.join(timeout=10)
