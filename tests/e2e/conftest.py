"""Fixtures for the e2e suite: a real Kubernetes cluster, never a mock.

Before the first test, the cluster is brought up (or a running one reused) and
the runtime image made available with `make image`, unless `make e2e` already
did so (FLUX_E2E_PREPARED=1). With FLUX_E2E_KUBECONFIG set, that cluster is used
instead of a local one. A missing prerequisite fails the run; it never skips.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from driver_tokens import POLICY, policy_active
from flux_runs import shared_home_volume

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# The securityContext the operator gives its pods: passes the "restricted" Pod
# Security Standard, which every test namespace enforces.
RESTRICTED_POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


_prepare_error: str | None = None


def _cluster_facts() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(REPO / "cluster/scripts/print-env.sh")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Prepare the cluster once, outside any test's timeout: a cold start
    builds binaries and images for many minutes."""
    global _prepare_error
    if not any(item.get_closest_marker("e2e") for item in session.items):
        return
    if os.environ.get("FLUX_E2E_PREPARED") == "1":
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    print("\ne2e: preparing the cluster and runtime image (make image) ...", flush=True)
    with capman.global_and_fixture_disabled():
        rc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "image"]).returncode
    if rc != 0:
        _prepare_error = (
            f"`make image` (cluster-up + runtime image) failed with exit code {rc}; "
            "see its output above. The e2e suite needs root, the Debian packages and the "
            "Go/PyPI/Debian registries (see cluster/README.md)."
        )


@dataclass
class Cluster:
    """A kubectl-driven handle on the cluster under test."""

    kubeconfig: str
    kubectl_path: str
    image: str
    local: bool
    facts: dict[str, str]
    # kubectl's discovery cache, kept out of ~/.kube.
    cache_dir: str

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.kubectl_path, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir]
        cmd += args
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}"
            )
        return proc

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        ns = ["-n", namespace] if namespace else []
        return json.loads(self.kubectl("get", kind, name, *ns, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any], namespace: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def wait_for(
        self,
        what: str,
        probe: Callable[[], T | None],
        timeout: float,
        describe: Callable[[], str] | None = None,
        interval: float = 0.5,
    ) -> T:
        """Poll `probe` until it returns a truthy value and return it. On timeout
        fail with `what`, the elapsed time and `describe()` (the object's state)."""
        start = time.monotonic()
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() - start > timeout:
                detail = describe() if describe else ""
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")
            time.sleep(interval)

    def describe(self, kind: str, name: str, namespace: str) -> str:
        proc = self.kubectl("describe", kind, name, "-n", namespace, check=False)
        return proc.stdout + proc.stderr

    def pod_manifest(
        self,
        name: str,
        args: list[str],
        *,
        env: list[dict[str, Any]] | None = None,
        memory: str = "128Mi",
        **pod_spec: Any,
    ) -> dict[str, Any]:
        """A one-shot pod from the runtime image (ENTRYPOINT is tini + python, so
        args are python's), shaped like the pods the operator will create."""
        container: dict[str, Any] = {
            "name": "main",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "args": args,
            "securityContext": RESTRICTED_CONTAINER_SECURITY,
            "resources": {
                "requests": {"cpu": "10m", "memory": memory},
                "limits": {"memory": memory},
            },
        }
        if env:
            container["env"] = env
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"flux.dev/e2e": "true"}},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": RESTRICTED_POD_SECURITY,
                "containers": [container],
                **pod_spec,
            },
        }

    @staticmethod
    def container_state(pod: dict[str, Any]) -> dict[str, Any]:
        """State of the pod's first container ({} before it has one)."""
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        state: dict[str, Any] = statuses[0].get("state", {})
        return state

    def wait_terminated(self, namespace: str, pod: str, timeout: float) -> dict[str, Any]:
        """Waits until the pod has finished (phase Succeeded or Failed) and its
        container reports a terminated state; returns the whole pod. (The kubelet
        may publish the container's end one status update before the phase.)"""

        def probe() -> dict[str, Any] | None:
            obj = self.get("pod", pod, namespace)
            done = obj.get("status", {}).get("phase") in ("Succeeded", "Failed")
            return obj if done and "terminated" in self.container_state(obj) else None

        return self.wait_for(
            f"pod {namespace}/{pod} to terminate",
            probe,
            timeout,
            describe=lambda: self.describe("pod", pod, namespace),
        )


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    if _prepare_error:
        pytest.fail(_prepare_error, pytrace=False)
    facts = _cluster_facts()
    kube = Cluster(
        kubeconfig=facts["KUBECONFIG"],
        kubectl_path=facts["KUBECTL"],
        image=facts["IMAGE"],
        local=facts["LOCAL"] == "1",
        facts=facts,
        cache_dir=str(tmp_path_factory.mktemp("kube-cache")),
    )
    if not Path(kube.kubeconfig).is_file():
        pytest.fail(f"kubeconfig {kube.kubeconfig} not found: run `make cluster-up`", pytrace=False)
    if not Path(kube.kubectl_path).is_file():
        pytest.fail(f"kubectl not found at {kube.kubectl_path}", pytrace=False)
    ready = kube.kubectl("get", "--raw", "/readyz", check=False)
    if ready.returncode != 0:
        pytest.fail(f"API server not ready: {ready.stderr}", pytrace=False)
    return kube


@pytest.fixture(scope="session")
def _namespaces(cluster: Cluster) -> Iterator[list[str]]:
    """Collects the test namespaces; at the end waits until they are all gone,
    so a later run starts from a clean cluster."""
    created: list[str] = []
    yield created
    if created:
        cluster.kubectl(
            "wait",
            "--for=delete",
            "--timeout=120s",
            *[f"namespace/{n}" for n in created],
            check=False,
            timeout=150,
        )


@pytest.fixture
def namespace(cluster: Cluster, _namespaces: list[str]) -> Iterator[str]:
    """A fresh namespace enforcing the restricted Pod Security Standard; deleted
    after the test."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {
                    "flux.dev/e2e": "true",
                    "pod-security.kubernetes.io/enforce": "restricted",
                },
            },
        },
        namespace="default",
    )
    _namespaces.append(name)
    # Pods are rejected until the service account controller made "default".
    cluster.wait_for(
        f"service account {name}/default",
        lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=60,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ----------------------------------------------------------- the Flux operator


class Operator:
    """The operator as a local process on the test cluster's kubeconfig."""

    def __init__(self, cluster: Cluster, log_path: Path, env: dict[str, str] | None = None):
        self.cluster = cluster
        self.log_path = log_path
        # Settings over the suite's (test_operator_failover.py runs a pair elsewhere).
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "FLUX_KUBECONFIG": self.cluster.kubeconfig,
            "FLUX_DEFAULT_IMAGE": self.cluster.image,
            "FLUX_DRIVER_LINGER_SECONDS": "20",
            # Only the per-test namespaces: an operator installed by the chart test
            # serves its own (chart-*) namespace, and no run may have two operators.
            "FLUX_WATCH_NAMESPACES": "e2e-*",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flux.k8s"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def restart_if_exited(self) -> None:
        """Start the process again if it exited, as the kubelet restarts the
        operator's pod: a leader that cannot renew its Lease (the API server
        restarted, as the chaos test does) exits by design."""
        if self.proc is not None and self.proc.poll() is not None:
            self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/workflows.flux.dev",
        "crd/workflowruns.flux.dev",
    )


@pytest.fixture(scope="session")
def operator(
    cluster: Cluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()
    print("operator log tail:\n" + op.log_tail())


@pytest.fixture(autouse=True)
def _operator_supervised(request: pytest.FixtureRequest) -> None:
    """Every test that uses the suite's operator finds it running."""
    if "operator" in request.fixturenames:
        op: Operator = request.getfixturevalue("operator")
        op.restart_if_exited()


@pytest.fixture
def make_operator(cluster: Cluster, crds: None) -> Iterator[Callable[..., Operator]]:
    """Operator processes of the test's own (``make_operator(log_path, **env)``, not
    started), stopped after it: e.g. a leader and a standby."""
    made: list[Operator] = []

    def make(log_path: Path, **env: str) -> Operator:
        made.append(Operator(cluster, log_path, env))
        return made[-1]

    yield make
    for op in made:
        op.stop()


@pytest.fixture(scope="session")
def driver_isolation(cluster: Cluster) -> Iterator[list[bool]]:
    """deploy/driver-isolation-policy.yaml, as installed: every driver of the suite
    runs under it. Removed at the end: the cluster is shared with other checkouts."""
    cluster.kubectl("apply", "-f", str(POLICY))
    active: list[bool] = []  # set once a namespace saw it enforced
    yield active
    cluster.kubectl("delete", "-f", str(POLICY), "--ignore-not-found", check=False)


@pytest.fixture
def flux_ns(
    cluster: Cluster, namespace: str, operator: Operator, driver_isolation: list[bool]
) -> str:
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "deploy/driver-rbac.yaml"))
    if not driver_isolation:
        cluster.wait_for(
            "the driver isolation policy to be enforced",
            lambda: policy_active(cluster, namespace),
            30,
        )
        driver_isolation.append(True)
    return namespace


@pytest.fixture
def shared_home(cluster: Cluster, flux_ns: str) -> Iterator[dict[str, Any]]:
    """A volume all pods of a run can reach, for examples that store outputs in files."""
    with shared_home_volume(cluster, flux_ns) as volume:
        yield volume
