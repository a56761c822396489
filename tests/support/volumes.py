"""A volume every pod of a namespace can reach on the local test cluster: a host
directory as a static PersistentVolume (the administrator's side; pods never
name a host path, so they stay within the restricted Pod Security Standard) and
a claim bound to it. The e2e suite's shared home (tests/e2e/flux_runs.py) and
the chaos suite's ledger (benchmarks/chaos.py) use it."""

from __future__ import annotations

from typing import Any

SIZE = "100Mi"


def host_path_volume(name: str, path: str) -> dict[str, Any]:
    """A ReadWriteMany PersistentVolume on the host directory ``path`` (which must
    exist and be writable by the pods' user), kept when its claim goes."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": SIZE},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": path, "type": "Directory"},
        },
    }


def claim(name: str, volume: str | None = None) -> dict[str, Any]:
    """A ReadWriteMany claim; bound to ``volume`` when given (no storage class)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": SIZE}},
    }
    if volume is not None:
        spec.update(storageClassName="", volumeName=volume)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": spec,
    }
