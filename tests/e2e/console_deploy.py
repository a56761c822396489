"""The chart's console (its ui templates only) in a test namespace, and a
port-forward to it: the e2e console tests read its pages through that."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cluster

from support.helm import cluster_bin_dir

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/flux"


def _helm() -> str:
    return str(cluster_bin_dir() / "helm")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _console_manifests(cluster: Cluster, release: str, namespace: str) -> str:
    """Only the chart's ui templates: the operator of this test session serves the runs."""
    repository, _, tag = cluster.image.rpartition(":")
    return subprocess.run(
        [
            _helm(),
            "template",
            release,
            str(CHART),
            "-n",
            namespace,
            "--show-only=templates/ui-rbac.yaml",
            "--show-only=templates/ui-deployment.yaml",
            "--set=ui.enabled=true",
            f"--set=watchNamespaces={{{namespace}}}",
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@contextmanager
def deployed_console(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The console deployed for ``namespace`` and rolled out; yields its
    Deployment's name (also its Service's and service account's)."""
    release = f"console-{namespace}"  # its ClusterRole is cluster-wide: one per test namespace
    manifests = _console_manifests(cluster, release, namespace)
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifests)
        deployment = f"{release}-flux-ui"
        done = cluster.kubectl(
            "rollout",
            "status",
            f"deployment/{deployment}",
            "-n",
            namespace,
            "--timeout=180s",
            check=False,
            timeout=200,
        )
        assert done.returncode == 0, done.stderr + cluster.describe(
            "deployment", deployment, namespace
        )
        yield deployment
    finally:
        cluster.kubectl("delete", "-n", namespace, "-f", "-", input=manifests, check=False)


@contextmanager
def port_forward(cluster: Cluster, namespace: str, service: str) -> Iterator[str]:
    """A local URL forwarded to port 80 of ``service``, once it answers /healthz."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            cluster.kubectl_path,
            "--kubeconfig",
            cluster.kubeconfig,
            "port-forward",
            "-n",
            namespace,
            f"svc/{service}",
            f"{port}:80",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return proc.poll() is not None

    try:
        cluster.wait_for(f"port-forward to {service}", ready, timeout=60)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
