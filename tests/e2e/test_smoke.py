"""Smoke tests proving the node is real: pods from the runtime image run on a
real kubelet + containerd, and the controllers behave as Kubernetes does."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

pytestmark = pytest.mark.e2e


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_python_pod_exits_zero_with_message_and_logs(cluster: Cluster, namespace: str) -> None:
    code = (
        "import os, sys, flux\n"
        "print(f'python={sys.version_info[0]}.{sys.version_info[1]} uid={os.getuid()}')\n"
        "open('/dev/termination-log', 'w').write('all good')\n"
    )
    cluster.apply(cluster.pod_manifest("hello", ["-c", code]), namespace)
    pod = cluster.wait_terminated(namespace, "hello", timeout=120)

    terminated = cluster.container_state(pod)["terminated"]
    assert pod["status"]["phase"] == "Succeeded"
    assert terminated["exitCode"] == 0
    assert terminated["message"] == "all good"
    logs = cluster.kubectl("logs", "hello", "-n", namespace).stdout
    # The project requires Python >= 3.11; the image runs as the non-root user.
    assert re.search(r"python=3\.(1[1-9]|[2-9]\d) uid=10001", logs), logs


def test_active_deadline_kills_sleeping_pod_promptly(cluster: Cluster, namespace: str) -> None:
    # The grace period is long on purpose: only a PID 1 that reacts to SIGTERM
    # at once ends the pod well before it; otherwise it takes the full minute.
    code = "import time; time.sleep(600)"
    manifest = cluster.pod_manifest(
        "sleeper",
        ["-c", code],
        activeDeadlineSeconds=5,
        terminationGracePeriodSeconds=60,
    )
    cluster.apply(manifest, namespace)
    pod = cluster.wait_terminated(namespace, "sleeper", timeout=60)

    status = pod["status"]
    assert status["phase"] == "Failed"
    assert status.get("reason") == "DeadlineExceeded"
    terminated = cluster.container_state(pod)["terminated"]
    # 128 + SIGTERM: tini passed SIGTERM on and Python died of it (137 = SIGKILL).
    assert terminated["exitCode"] == 143, terminated
    ran_for = (_ts(terminated["finishedAt"]) - _ts(status["startTime"])).total_seconds()
    assert ran_for < 5 + 20, f"pod took {ran_for:.0f}s to stop after a 5s deadline"


def test_secret_key_ref_env_arrives(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "stringData": {"token": "s3cr3t-value"},
        },
        namespace,
    )
    env = [
        {
            "name": "FLUX_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
        }
    ]
    code = "import os, sys; sys.exit(0 if os.environ.get('FLUX_TOKEN') == 's3cr3t-value' else 7)"
    cluster.apply(cluster.pod_manifest("secret-env", ["-c", code], env=env), namespace)
    pod = cluster.wait_terminated(namespace, "secret-env", timeout=120)
    assert cluster.container_state(pod)["terminated"]["exitCode"] == 0


def test_missing_secret_is_create_container_config_error(cluster: Cluster, namespace: str) -> None:
    env = [
        {
            "name": "FLUX_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "absent", "key": "token"}},
        }
    ]
    manifest = cluster.pod_manifest("no-secret", ["-c", "pass"], env=env)
    cluster.apply(manifest, namespace)

    def waiting() -> dict[str, Any] | None:
        state = cluster.container_state(cluster.get("pod", "no-secret", namespace))
        return state.get("waiting") if "waiting" in state else None

    def config_error() -> dict[str, Any] | None:
        w = waiting()
        return w if w and w.get("reason") == "CreateContainerConfigError" else None

    found = cluster.wait_for(
        "CreateContainerConfigError on pod no-secret",
        config_error,
        timeout=60,
        describe=lambda: cluster.describe("pod", "no-secret", namespace),
    )
    assert "absent" in found.get("message", ""), found


def test_nonzero_exit_is_reported(cluster: Cluster, namespace: str) -> None:
    cluster.apply(cluster.pod_manifest("fails", ["-c", "raise SystemExit(3)"]), namespace)
    pod = cluster.wait_terminated(namespace, "fails", timeout=120)
    terminated = cluster.container_state(pod)["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 3
    assert terminated["reason"] == "Error"


def test_memory_limit_gives_oom_killed(cluster: Cluster, namespace: str) -> None:
    # Writes 512 MiB into a 64 MiB container: the kernel's OOM killer ends it.
    code = "data = b'x' * (512 * 1024 * 1024); print(len(data))"
    manifest = cluster.pod_manifest("hog", ["-c", code], memory="64Mi")
    cluster.apply(manifest, namespace)
    pod = cluster.wait_terminated(namespace, "hog", timeout=120)
    terminated = cluster.container_state(pod)["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert terminated["reason"] == "OOMKilled", terminated
    assert terminated["exitCode"] == 137, terminated


def test_job_completes_through_controller_manager(cluster: Cluster, namespace: str) -> None:
    template = cluster.pod_manifest("job", ["-c", "print('job ran')"])
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }
    cluster.apply(job, namespace)

    def complete() -> dict[str, Any] | None:
        obj = cluster.get("job", "once", namespace)
        conditions = obj.get("status", {}).get("conditions", [])
        done = any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)
        return obj if done else None

    obj = cluster.wait_for(
        "job once to complete",
        complete,
        timeout=120,
        describe=lambda: cluster.describe("job", "once", namespace),
    )
    assert obj["status"]["succeeded"] == 1
