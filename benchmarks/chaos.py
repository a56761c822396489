"""The chaos suite (issue 14.3): many mixed runs while faults are injected at random.

Two operator processes elect a leader on a Lease (as tests/e2e/test_operator_failover.py
runs them), serving one fresh namespace chaos-<random> (restricted Pod Security
Standard). Runs of deterministic workflows (sequential, parallel, a batched map,
retries, a timeout with fallback, a rollback, pause then resume by a status patch,
a durable sleep; four of the nine Workflows on a Shared driver, which also
keeps the machine's pod starts within what two cores do) are created at a steady
rate over the first 80% of --duration, while a fault injector, every --interval
seconds on average (at random), does one of:

  leader-kill        SIGKILL the operator holding the Lease; it is started again
                     at once as a standby, as its Deployment would
  driver-pod-delete  delete a driver pod (per-run or shared)
  task-pod-delete    delete a task pod
  task-pod-evict     evict a task pod (the Eviction API)
  apiserver-restart  restart kube-apiserver            (cluster/scripts/restart-daemon.sh)
  etcd-restart       restart etcd and kube-apiserver   (idem)
  kubelet-restart    restart the kubelet               (idem)
  containerd-restart restart containerd                (idem)

It stops by itself after --duration seconds or --max-faults faults, whichever
comes first; every daemon it stops is started again before it returns (in a
finally), and an operator process that exits (a leader that lost the API
server exits with code 3) is started again, as the kubelet would.

Every task appends to a side-effect ledger: a line per start and finish of each
step (run, key, step, pod, time) in a file per run on a volume all pods of the
namespace share (the Workflows' spec.homeVolume: a PersistentVolumeClaim bound
to a hostPath PersistentVolume the tool creates, as an administrator would;
task pods stay restricted). After the faults stop, it waits up to --settle
seconds (a bound) for every run to reach a final phase, or until no run has
changed for --quiet seconds, then reports:

  faults injected per kind; runs lost (a created run that is gone or never
  finished); runs stuck (not final when the waiting ends, so without progress
  for --quiet s after the faults stopped, or past --settle s); wrong
  outputs (a final run whose phase or output is not the expected one); steps
  re-run after their completion was recorded (a ledger start of a call later
  than the history event that settled it); retries per cause (history) and
  infrastructure retries (task records).

Local cluster only (it restarts the cluster's daemons: run it under the cluster
lock, with nothing else on the cluster):

    flock -o /tmp/flux-cluster.lock .venv/bin/python benchmarks/chaos.py \
        [--runs 200] [--duration 660] [--interval 5] [--seed 1] [--max-faults 300] \
        [--settle 900] [--quiet 180] [--results benchmarks/RESULTS.md]

Exit code 0 when every count that must be zero is zero, 1 otherwise.
`make chaos` runs the full form; tests/e2e/test_chaos_short.py a short one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k8s_bench import (
    REPO,
    Cluster,
    OperatorProcess,
    create_namespace,
    delete_namespaces,
    release_runs,
    wait_until,
)

sys.path.insert(0, str(REPO / "tests"))
from support.volumes import claim, host_path_volume

RESULTS = REPO / "benchmarks" / "RESULTS.md"
RESTART_DAEMON = REPO / "cluster" / "scripts" / "restart-daemon.sh"
LEASE = "flux-operator-chaos"
FINAL = ("Succeeded", "Failed", "Cancelled")
# The resume input of the pause scenario; its output is this plus one.
RESUME_INPUT = 41

SOURCE = '''
import json
import os
import time
from pathlib import Path

from flux import ExecutionError, WorkflowExecutionContext, task, workflow
from flux.tasks import parallel, pause, sleep


def ledger(key: str, step: str, event: str) -> None:
    """One line per start and finish of a step, on the volume every pod shares."""
    run = key.split("/", 1)[0]
    folder = Path(os.environ["FLUX_HOME"]) / "ledger"
    folder.mkdir(parents=True, exist_ok=True)
    line = {"run": run, "key": key, "step": step, "event": event,
            "pod": os.environ.get("HOSTNAME", ""), "t": time.time()}
    # One write of one short line with O_APPEND: lines of concurrent pods never mix.
    fd = os.open(folder / f"{run}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (json.dumps(line) + "\\n").encode())
    finally:
        os.close(fd)


def starts(key: str) -> int:
    path = Path(os.environ["FLUX_HOME"]) / "ledger" / (key.split("/", 1)[0] + ".jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return sum(1 for x in lines if x["key"] == key and x["event"] == "start")


@task
def step(key: str, x: int) -> int:
    ledger(key, "attempt", "start")
    time.sleep(0.5)
    ledger(key, "attempt", "finish")
    return x + 1


@task
def echo(key: str) -> str:
    ledger(key, "attempt", "start")
    ledger(key, "attempt", "finish")
    return key + ":ok"


@task.with_options(retry_max_attempts=4, retry_delay=1, retry_backoff=1)
def flaky(key: str) -> str:
    ledger(key, "attempt", "start")
    if starts(key) < 2:
        raise ConnectionError("first attempt fails")
    ledger(key, "attempt", "finish")
    return "recovered"


def slow_fallback(key: str) -> str:
    ledger(key, "fallback", "start")
    ledger(key, "fallback", "finish")
    return "fallback"


@task.with_options(timeout=2, fallback=slow_fallback)
def slow(key: str) -> str:
    ledger(key, "attempt", "start")
    time.sleep(60)
    ledger(key, "attempt", "finish")
    return "late"


def undo(key: str) -> None:
    ledger(key, "rollback", "start")
    ledger(key, "rollback", "finish")


@task.with_options(rollback=undo)
def broken(key: str) -> str:
    ledger(key, "attempt", "start")
    raise ValueError("broken on purpose")


@workflow
async def sequential(ctx: WorkflowExecutionContext[str]) -> int:
    a = await step(f"{ctx.input}/a", 1)
    return await step(f"{ctx.input}/b", a)


@workflow
async def fan_out(ctx: WorkflowExecutionContext[str]) -> list[int]:
    return await parallel(*[step(f"{ctx.input}/p{i}", i) for i in range(3)])


@workflow
async def batched_map(ctx: WorkflowExecutionContext[str]) -> list[str]:
    return await echo.map([f"{ctx.input}/m{i}" for i in range(4)], batch_size=2)


@workflow
async def retried(ctx: WorkflowExecutionContext[str]) -> str:
    return await flaky(f"{ctx.input}/r")


@workflow
async def timed_out(ctx: WorkflowExecutionContext[str]) -> str:
    return await slow(f"{ctx.input}/t")


@workflow
async def rolled_back(ctx: WorkflowExecutionContext[str]) -> str:
    try:
        return await broken(f"{ctx.input}/x")
    except ExecutionError:
        return "rolled back"


@workflow
async def paused(ctx: WorkflowExecutionContext[str]) -> int:
    given = await pause("approve")
    return await step(f"{ctx.input}/after", given)


@workflow
async def slept(ctx: WorkflowExecutionContext[str]) -> int:
    await sleep(8)
    return await step(f"{ctx.input}/s", 0)
'''


@dataclass(frozen=True)
class Scenario:
    """A Workflow of SOURCE and the output each of its runs must end with."""

    workflow: str
    function: str
    expected: Callable[[str], Any]
    shared: bool = False


SCENARIOS = (
    Scenario("sequential", "sequential", lambda run: 3),
    Scenario("sequential-shared", "sequential", lambda run: 3, shared=True),
    Scenario("fan-out", "fan_out", lambda run: [1, 2, 3], shared=True),
    Scenario(
        "batched-map", "batched_map", lambda run: [f"{run}/m{i}:ok" for i in range(4)], shared=True
    ),
    Scenario("retried", "retried", lambda run: "recovered"),
    Scenario("timed-out", "timed_out", lambda run: "fallback"),
    Scenario("rolled-back", "rolled_back", lambda run: "rolled back"),
    Scenario("paused", "paused", lambda run: RESUME_INPUT + 1),
    Scenario("slept", "slept", lambda run: 1, shared=True),
)
BY_WORKFLOW = {s.workflow: s for s in SCENARIOS}

FAULT_WEIGHTS = {
    "leader-kill": 3,
    "driver-pod-delete": 3,
    "task-pod-delete": 3,
    "task-pod-evict": 3,
    "apiserver-restart": 1,
    "etcd-restart": 1,
    "kubelet-restart": 1,
    "containerd-restart": 1,
}
DAEMONS_OF = {
    "apiserver-restart": ("kube-apiserver",),
    "etcd-restart": ("etcd", "kube-apiserver"),
    "kubelet-restart": ("kubelet",),
    "containerd-restart": ("containerd",),
}


# ------------------------------------------------------------- findings (pure)


@dataclass
class Findings:
    """What the runs and the ledger say; every list must be empty."""

    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    rerun_after_completion: list[str] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    infrastructure_retries: Counter[str] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)
    # Seconds from each finished run's startTime to its finishTime.
    durations: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stuck or self.wrong or self.rerun_after_completion)


def _when(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


SETTLING = ("TASK_COMPLETED", "TASK_FAILED", "TASK_FALLBACK_COMPLETED")


def settled_calls(history: Iterable[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """Each task call's ledger key (its first argument) and when history settled it
    (the first of its events in SETTLING): nothing of it may start after that."""
    keys: dict[str, str] = {}
    settled: dict[str, tuple[str, float]] = {}
    for event in history:
        # status.history says sourceId (flux.k8s.bodies.HistoryEventBody).
        kind, call = event.get("type"), event.get("sourceId") or event.get("source_id") or ""
        value = event.get("value")
        if kind == "TASK_STARTED" and isinstance(value, dict) and value.get("args"):
            keys[call] = str(value["args"][0])
        elif kind in SETTLING and call in keys:
            settled.setdefault(call, (keys[call], _when(event["time"])))
    return settled


def reruns(history: Iterable[dict[str, Any]], ledger: Iterable[dict[str, Any]]) -> list[str]:
    """Ledger starts of a call later than the event that settled it in history."""
    by_key = {key: (call, at) for call, (key, at) in settled_calls(history).items()}
    found = []
    for line in ledger:
        if line.get("event") != "start" or line.get("key") not in by_key:
            continue
        call, at = by_key[line["key"]]
        if float(line["t"]) > at:
            found.append(
                f"{call} ({line['key']}): {line['step']} started in pod {line['pod']} "
                f"{float(line['t']) - at:.2f} s after history settled it"
            )
    return found


def retry_causes(history: Iterable[dict[str, Any]]) -> Counter[str]:
    """Retries by the type of the error that caused each (TASK_RETRY_STARTED)."""
    causes: Counter[str] = Counter()
    for event in history:
        if event.get("type") == "TASK_RETRY_STARTED":
            error = (event.get("value") or {}).get("error") or {}
            causes[str(error.get("type") or "unknown")] += 1
    return causes


def infrastructure_causes(records: Iterable[dict[str, Any]]) -> Counter[str]:
    """Pods started again after one was lost, by the step they ran. The operator
    records one cause only (PodLost: deleted, evicted, its node gone), and a later
    failure of the call overwrites the record's ``lastError``, so the step is
    what can be told apart."""
    causes: Counter[str] = Counter()
    for record in records:
        count = int(record.get("infrastructureRetries") or 0)
        if count:
            causes[f"PodLost ({record.get('step') or 'attempt'})"] += count
    return causes


def judge(
    created: Iterable[str],
    runs: dict[str, dict[str, Any]],
    histories: dict[str, list[dict[str, Any]]],
    records: dict[str, list[dict[str, Any]]],
    ledgers: dict[str, list[dict[str, Any]]],
) -> Findings:
    """The findings from the runs as listed at the end (name → body), their whole
    histories and task records, and the ledger's lines per run."""
    found = Findings()
    for name in created:
        body = runs.get(name)
        if body is None:
            found.lost.append(f"{name}: gone")
            continue
        status = body.get("status") or {}
        phase = str(status.get("phase") or "none")
        found.phases[phase] += 1
        if status.get("startTime") and status.get("finishTime"):
            found.durations.append(_when(status["finishTime"]) - _when(status["startTime"]))
        history = histories.get(name, [])
        found.retries += retry_causes(history)
        found.infrastructure_retries += infrastructure_causes(records.get(name, []))
        found.rerun_after_completion += [
            f"{name}: {r}" for r in reruns(history, ledgers.get(name, []))
        ]
        if phase not in FINAL:
            found.stuck.append(f"{name}: {phase}")
            continue
        scenario = BY_WORKFLOW[body["spec"]["workflowRef"]["name"]]
        expected = scenario.expected(name)
        if phase != "Succeeded" or status.get("output") != expected:
            error = status.get("error") or {}
            found.wrong.append(
                f"{name} ({scenario.workflow}): {phase}, output {status.get('output')!r} "
                f"(expected {expected!r}) {error.get('type', '')}: {error.get('message', '')}"[:400]
            )
    return found


# ------------------------------------------------------------------ the cluster


class Operators:
    """Two operator processes electing a leader on LEASE in the namespace; an exited
    one is started again (as the kubelet restarts a container)."""

    def __init__(self, cluster: Cluster, namespace: str, logs: Path) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.restarts: Counter[str] = Counter()
        self.ops = {
            name: OperatorProcess(
                cluster,
                namespace,
                metrics=False,
                log_path=logs / f"operator-{name}.log",
                env={
                    "FLUX_LEASE_NAME": LEASE,
                    "FLUX_LEASE_NAMESPACE": namespace,
                    "POD_NAME": f"op-{name}",
                    "FLUX_DRIVER_LINGER_SECONDS": "5",
                },
            )
            for name in ("a", "b")
        }

    def start(self) -> None:
        for op in self.ops.values():
            op.start()

    def holder(self) -> str:
        proc = self.cluster.run(
            "get", "lease", LEASE, "-n", self.namespace, "-o", "json", check=False, timeout=20
        )
        if proc.returncode != 0:
            return ""
        identity = str((json.loads(proc.stdout).get("spec") or {}).get("holderIdentity") or "")
        return identity.split("_")[0].removeprefix("op-") if identity else ""

    def supervise(self) -> None:
        for op in self.ops.values():
            if not op.alive():
                code = op.proc.returncode if op.proc is not None else None
                self.restarts[f"exit {code}"] += 1
                op.start()

    def kill_leader(self) -> str | None:
        leader = self.holder()
        op = self.ops.get(leader)
        if op is None or not op.alive() or op.proc is None:
            return None
        op.proc.send_signal(signal.SIGKILL)
        op.proc.wait(timeout=30)
        op.start()
        return leader

    def stop(self) -> None:
        for op in self.ops.values():
            op.stop()


def restart_daemons(*names: str) -> None:
    subprocess.run(["bash", str(RESTART_DAEMON), *names], check=True, timeout=600)


def restore_daemons() -> list[str]:
    """Starts every cluster daemon that is not running, as systemd would restart a
    daemon that exited (kube-scheduler exits by design when it finds its cache
    inconsistent, which restarts of etcd and the API server can cause); the
    daemons it started."""
    proc = subprocess.run(
        ["bash", str(RESTART_DAEMON), "--missing"],
        check=True,
        timeout=600,
        capture_output=True,
        text=True,
    )
    sys.stderr.write(proc.stderr)
    return [
        line.split("] ", 1)[1].split(" ", 1)[0]
        for line in proc.stderr.splitlines()
        if line.endswith(" is not running") and "] " in line
    ]


class Injector(threading.Thread):
    """Faults at random, one at a time, until told to stop or a cap is reached."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        operators: Operators,
        rng: random.Random,
        interval: float,
        max_faults: int,
        until: float,
    ) -> None:
        super().__init__(name="chaos-injector", daemon=True)
        self.cluster, self.namespace, self.operators = cluster, namespace, operators
        self.rng, self.interval, self.max_faults, self.until = rng, interval, max_faults, until
        self.injected: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.log: list[str] = []
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        kinds, weights = list(FAULT_WEIGHTS), list(FAULT_WEIGHTS.values())
        try:
            while sum(self.injected.values()) < self.max_faults:
                pause = self.rng.uniform(0.5, 1.5) * self.interval
                if self.halt.wait(pause) or time.monotonic() + 1 > self.until:
                    break
                kind = self.rng.choices(kinds, weights)[0]
                target = self.inject(kind)
                stamp = time.strftime("%H:%M:%S")
                if target is None:
                    self.missed[kind] += 1
                else:
                    self.injected[kind] += 1
                    self.log.append(f"{stamp} {kind} {target}")
                    print(f"[chaos {stamp}] {kind} {target}", flush=True)
        except BaseException as exc:  # reported by the caller; daemons are restored there
            self.error = exc

    def inject(self, kind: str) -> str | None:
        """Does one fault; what it hit, or None when there was nothing to hit."""
        if kind in DAEMONS_OF:
            restart_daemons(*DAEMONS_OF[kind])
            return " ".join(DAEMONS_OF[kind])
        if kind == "leader-kill":
            return self.operators.kill_leader()
        roles = ("driver", "shared-driver") if kind == "driver-pod-delete" else ("task",)
        pod = self.pick_pod(roles)
        if pod is None:
            return None
        if kind == "task-pod-evict":
            eviction = {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": pod, "namespace": self.namespace},
            }
            path = f"/api/v1/namespaces/{self.namespace}/pods/{pod}/eviction"
            proc = self.cluster.run(
                "create", "--raw", path, "-f", "-", input=json.dumps(eviction), check=False
            )
        else:
            proc = self.cluster.run(
                "delete", "pod", pod, "-n", self.namespace, "--wait=false", check=False
            )
        return pod if proc.returncode == 0 else None

    def pick_pod(self, roles: tuple[str, ...]) -> str | None:
        selector = f"flux.dev/role in ({','.join(roles)})"
        proc = self.cluster.run(
            "get", "pods", "-n", self.namespace, "-l", selector,
            "--field-selector", "status.phase!=Succeeded,status.phase!=Failed",
            "-o", "jsonpath={.items[*].metadata.name}", check=False, timeout=20,
        )  # fmt: skip
        pods = proc.stdout.split() if proc.returncode == 0 else []
        return self.rng.choice(pods) if pods else None


# ---------------------------------------------------------------------- the run


@dataclass
class Settings:
    runs: int = 200
    duration: float = 660
    interval: float = 5
    seed: int = 1
    max_faults: int = 300
    settle: float = 900
    quiet: float = 180
    max_active: int = 40
    keep_namespace: bool = False


@dataclass
class Outcome:
    findings: Findings
    injected: Counter[str]
    missed: Counter[str]
    operator_restarts: Counter[str]
    daemon_restarts: Counter[str]
    created: int
    created_during_faults: int
    seconds: float
    ledger_lines: int
    fault_log: list[str]
    error: str | None = None


def _shared_volume(cluster: Cluster, namespace: str, path: str) -> dict[str, Any]:
    """A hostPath PersistentVolume (the administrator's side) bound to a claim in the
    namespace; the Workflows mount the claim as their homeVolume."""
    volume = f"flux-chaos-{namespace}"
    cluster.apply(host_path_volume(volume, path), "default")
    cluster.apply(claim("chaos-ledger", volume), namespace)
    return {"persistentVolumeClaim": {"claimName": "chaos-ledger"}}


def _workflow(scenario: Scenario, home: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": SOURCE, "function": scenario.function, "homeVolume": home}
    if scenario.shared:
        spec["driverMode"] = "Shared"
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": scenario.workflow},
        "spec": spec,
    }


def _run_manifest(name: str, workflow: str) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": name},
        "spec": {"workflowRef": {"name": workflow}, "input": name},
    }


def _phases(cluster: Cluster, namespace: str) -> dict[str, str] | None:
    """Each run's phase and resourceVersion ("Running 1234"): a change is progress."""
    template = (
        '{range .items[*]}{.metadata.name}{"\\t"}{.status.phase} '
        '{.metadata.resourceVersion}{"\\n"}{end}'
    )
    proc = cluster.run(
        "get", "fxrun", "-n", namespace, "-o", f"jsonpath={template}", check=False, timeout=30
    )
    if proc.returncode != 0:
        return None  # the API server is being restarted
    return dict([*line.split("\t"), ""][:2] for line in proc.stdout.splitlines() if line)


class Driver:
    """Creates the runs on schedule and resumes the paused ones."""

    def __init__(self, cluster: Cluster, namespace: str, names: list[str], until: float) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.pending = list(names)
        self.created: list[str] = []
        self.start, self.until = time.monotonic(), until
        self.total = len(names)
        self.resumed: dict[str, float] = {}

    def create_due(self, phases: dict[str, str] | None, max_active: int) -> None:
        """Creates the runs due by now, keeping at most ``max_active`` unfinished: a
        client with a concurrency limit, so the node's pod capacity (110) is never
        what fails a run."""
        if phases is None:
            return
        active = sum(1 for n in self.created if phases.get(n, "").split(" ")[0] not in FINAL)
        span = max(1.0, self.until - self.start)
        due = (
            self.total
            if time.monotonic() >= self.until
            else int(self.total * (time.monotonic() - self.start) / span) + 1
        )
        batch = self.pending[: max(0, min(due - len(self.created), max_active - active))]
        if not batch:
            return
        items = [_run_manifest(n, n.rsplit("-", 1)[0]) for n in batch]
        manifest = {"apiVersion": "v1", "kind": "List", "items": items}
        proc = self.cluster.run(
            "create", "-n", self.namespace, "-f", "-", input=json.dumps(manifest),
            check=False, timeout=60,
        )  # fmt: skip
        # Created, or created by an attempt whose answer was lost.
        for name in batch:
            if proc.returncode == 0 or self.exists(name):
                self.created.append(name)
                self.pending.remove(name)

    def exists(self, name: str) -> bool:
        proc = self.cluster.run("get", "fxrun", name, "-n", self.namespace, check=False)
        return proc.returncode == 0

    def resume_paused(self, phases: dict[str, str]) -> None:
        for name, phase in phases.items():
            if (
                phase.split(" ")[0] != "Paused"
                or time.monotonic() - self.resumed.get(name, -1e9) < 30
            ):
                continue
            patch = {"status": {"resume": {"input": RESUME_INPUT}}}
            proc = self.cluster.run(
                "patch", "fxrun", name, "-n", self.namespace, "--subresource=status",
                "--type=merge", "-p", json.dumps(patch), check=False,
            )  # fmt: skip
            if proc.returncode == 0:
                self.resumed[name] = time.monotonic()


def _archived(cluster: Cluster, namespace: str, refs: list[dict[str, Any]]) -> list[Any]:
    from flux.k8s import archive

    items: list[Any] = []
    for ref in refs:
        configmap = cluster.json("get", "configmap", ref["configMap"], "-n", namespace)
        archive.check_entry(configmap, ref)
        items.extend(archive.read_payload(configmap))
    return items


def _read_ledger(folder: Path) -> dict[str, list[dict[str, Any]]]:
    ledgers: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        ledgers[path.stem] = lines
    return ledgers


def run(settings: Settings, cluster: Cluster | None = None) -> Outcome:
    """The whole chaos run: set-up, runs and faults, settling, findings, clean-up."""
    cluster = cluster or Cluster.resolve(None, None, None)
    cluster.apply_crds()
    rng = random.Random(settings.seed)
    logs = Path(tempfile.mkdtemp(prefix="flux-chaos-"))
    home = logs / "home"
    home.mkdir()
    os.chmod(home, 0o1777)
    namespace = create_namespace(cluster, "chaos")
    print(f"chaos: namespace {namespace}, logs and ledger in {logs}", flush=True)
    operators = Operators(cluster, namespace, logs)
    injector: Injector | None = None
    started = time.monotonic()
    error: str | None = None
    names = [f"{SCENARIOS[i % len(SCENARIOS)].workflow}-{i:04d}" for i in range(settings.runs)]
    rng.shuffle(names)
    driver = Driver(cluster, namespace, names, started + 0.8 * settings.duration)
    runs: dict[str, dict[str, Any]] = {}
    daemon_exits: Counter[str] = Counter()
    try:
        volume = _shared_volume(cluster, namespace, str(home))
        for scenario in SCENARIOS:
            cluster.apply(_workflow(scenario, volume), namespace)
        operators.start()
        wait_until("a leader", lambda: operators.holder() != "", timeout=120)
        injector = Injector(
            cluster, namespace, operators, rng, settings.interval, settings.max_faults,
            started + settings.duration,
        )  # fmt: skip
        injector.start()
        settle_by, faults_end, supervised = None, 0.0, time.monotonic()
        during_faults = 0
        last: dict[str, str] | None = None
        changed = time.monotonic()
        while True:
            operators.supervise()
            if time.monotonic() - supervised > 10:
                daemon_exits.update(restore_daemons())
                supervised = time.monotonic()
            phases = _phases(cluster, namespace)
            driver.create_due(phases, settings.max_active)
            if phases is not None:
                driver.resume_paused(phases)
                if phases != last:
                    last, changed = phases, time.monotonic()
            faults_over = not injector.is_alive()
            if faults_over and settle_by is None:
                faults_end = time.monotonic()
                during_faults = len(driver.created)
                settle_by = faults_end + settings.settle
                print(f"chaos: faults over after {time.monotonic() - started:.0f} s", flush=True)
            if settle_by is not None:
                if time.monotonic() > settle_by:
                    break
                if phases is not None and not driver.pending:
                    if all(phases.get(n, "").split(" ")[0] in FINAL for n in driver.created):
                        break
                    # Stuck: no run changed for --quiet s after the faults.
                    if time.monotonic() > max(changed, faults_end) + settings.quiet:
                        break
            time.sleep(3)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if injector is not None:
            injector.halt.set()
            injector.join(timeout=700)
            if injector.error is not None and error is None:
                error = f"injector: {type(injector.error).__name__}: {injector.error}"
        daemon_exits.update(restore_daemons())
        wait_until(
            "the API server", lambda: cluster.run("get", "--raw", "/readyz", check=False,
                                                   timeout=10).returncode == 0, timeout=300,
        )  # fmt: skip
        try:
            listed = cluster.json("get", "fxrun", "-n", namespace)["items"]
            runs = {r["metadata"]["name"]: r for r in listed}
            histories: dict[str, list[dict[str, Any]]] = {}
            records: dict[str, list[dict[str, Any]]] = {}
            for name, body in runs.items():
                status = body.get("status") or {}
                histories[name] = [
                    *_archived(cluster, namespace, status.get("historyArchive") or []),
                    *(status.get("history") or []),
                ]
                records[name] = [
                    *_archived(cluster, namespace, status.get("taskArchive") or []),
                    *(status.get("tasks") or []),
                ]
            ledgers = _read_ledger(home / "ledger")
            # Kept for a second look: the namespace and its runs are deleted below.
            (logs / "runs.json").write_text(json.dumps(list(runs.values())))
        finally:
            if not settings.keep_namespace:
                left = delete_namespaces(cluster, [namespace], timeout=120)
                if left:
                    release_runs(cluster, namespace)
                    delete_namespaces(cluster, left, timeout=120)
                cluster.run("delete", "pv", f"flux-chaos-{namespace}", "--wait=false", check=False)
            operators.stop()
    findings = judge(driver.created, runs, histories, records, ledgers)
    assert injector is not None
    if not settings.keep_namespace:
        shutil.copytree(home / "ledger", logs / "ledger-kept", dirs_exist_ok=True)
    return Outcome(
        findings=findings,
        injected=injector.injected,
        missed=injector.missed,
        operator_restarts=operators.restarts,
        daemon_restarts=daemon_exits,
        created=len(driver.created),
        created_during_faults=during_faults,
        seconds=time.monotonic() - started,
        ledger_lines=sum(len(v) for v in ledgers.values()),
        fault_log=injector.log,
        error=error,
    )


# ----------------------------------------------------------------------- report


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def _spread(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    return f"p50 {ordered[len(ordered) // 2]:.0f} s, max {ordered[-1]:.0f} s"


def report(outcome: Outcome, command: str, load: str) -> str:
    f = outcome.findings
    lines = [
        "## Chaos (issue 14.3)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine load (`uptime`) at the end: {load}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| runs created (while faults were injected) "
        f"| {outcome.created} ({outcome.created_during_faults}) |",
        f"| wall time | {outcome.seconds:.0f} s |",
        f"| faults injected | {sum(outcome.injected.values())} |",
        f"| faults per kind | {_counts(outcome.injected)} |",
        f"| faults with nothing to hit (not counted) | {_counts(outcome.missed)} |",
        f"| operator processes restarted after exiting | {_counts(outcome.operator_restarts)} |",
        f"| cluster daemons restarted after exiting by themselves "
        f"| {_counts(outcome.daemon_restarts)} |",
        f"| final phases | {_counts(f.phases)} |",
        f"| run duration (start to finish) | {_spread(f.durations)} |",
        f"| runs lost | {len(f.lost)} |",
        f"| runs stuck | {len(f.stuck)} |",
        f"| wrong outputs | {len(f.wrong)} |",
        f"| steps re-run after their completion was recorded | {len(f.rerun_after_completion)} |",
        f"| retries per cause (history) | {_counts(f.retries)} |",
        f"| infrastructure retries per cause (task records) "
        f"| {_counts(f.infrastructure_retries)} |",
        f"| ledger lines | {outcome.ledger_lines} |",
    ]
    if outcome.error:
        lines += ["", f"The run stopped early: {outcome.error}"]
    for title, items in (
        ("Lost", f.lost),
        ("Stuck", f.stuck),
        ("Wrong", f.wrong),
        ("Re-run after completion", f.rerun_after_completion),
    ):
        if items:
            lines += ["", f"{title}:", "", *[f"- {item}" for item in items[:20]]]
    return "\n".join(lines) + "\n"


def write_results(text: str, path: Path) -> None:
    """Replaces the chaos section of RESULTS.md (or appends it)."""
    old = path.read_text() if path.exists() else ""
    head = "## Chaos (issue 14.3)"
    if head in old:
        before, _, after = old.partition(head)
        rest = after.split("\n## ", 1)
        tail = "\n## " + rest[1] if len(rest) == 2 else ""
        new = before + text + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=Settings.runs)
    parser.add_argument("--duration", type=float, default=Settings.duration)
    parser.add_argument("--interval", type=float, default=Settings.interval)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument("--max-faults", type=int, default=Settings.max_faults)
    parser.add_argument("--settle", type=float, default=Settings.settle)
    parser.add_argument("--quiet", type=float, default=Settings.quiet)
    parser.add_argument("--max-active", type=int, default=Settings.max_active)
    parser.add_argument("--results", type=Path, default=None)
    args = parser.parse_args(argv)
    for name in ("runs", "duration", "interval", "max_faults", "settle", "quiet", "max_active"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.duration > 3600 or args.max_faults > 2000:
        parser.error("--duration is capped at 3600 s and --max-faults at 2000")
    settings = Settings(
        runs=args.runs, duration=args.duration, interval=args.interval, seed=args.seed,
        max_faults=args.max_faults, settle=args.settle, quiet=args.quiet,
        max_active=args.max_active,
    )  # fmt: skip
    outcome = run(settings)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/chaos.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(outcome, command, load)
    print(text)
    if args.results is not None:
        write_results(text, args.results)
    return 0 if outcome.findings.ok and outcome.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
