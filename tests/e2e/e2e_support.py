"""Helpers for the e2e suite: a kubectl-driven cluster handle, pod manifests
shaped like the operator's, and waits that fail with clear timeout messages."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

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
    name: str,
    image: str,
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
        "image": image,
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


def container_state(pod: dict[str, Any]) -> dict[str, Any]:
    """State of the pod's first container ({} before it has one)."""
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    state: dict[str, Any] = statuses[0].get("state", {})
    return state


def wait_terminated(cluster: Cluster, namespace: str, pod: str, timeout: float) -> dict[str, Any]:
    """Waits until the pod's container has terminated; returns the whole pod."""

    def probe() -> dict[str, Any] | None:
        obj = cluster.get("pod", pod, namespace)
        return obj if "terminated" in container_state(obj) else None

    return cluster.wait_for(
        f"pod {namespace}/{pod} to terminate",
        probe,
        timeout,
        describe=lambda: cluster.describe("pod", pod, namespace),
    )
