"""Fixtures for the e2e suite: a real Kubernetes cluster, never a mock.

Before the first test, the cluster is brought up (or a running one reused) and
the runtime image made available with `make image`, unless `make e2e` already
did so (FLUX_E2E_PREPARED=1). With FLUX_E2E_KUBECONFIG set, that cluster is used
instead of a local one. A missing prerequisite fails the run; it never skips.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Cluster

REPO = Path(__file__).resolve().parents[2]

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
