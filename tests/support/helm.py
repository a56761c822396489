"""The chart as ``helm template`` renders it, with the pinned helm the cluster
scripts build (``make helm``); skipped when that helm is missing, outside CI, so
the unit suite runs before any cluster was ever built."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from support.prerequisites import missing

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/flux"


def cluster_bin_dir() -> Path:
    """Where the cluster scripts keep their pinned binaries (kubectl, helm)."""
    out = subprocess.run(
        ["bash", "-c", f"source {REPO}/cluster/scripts/lib.sh && echo $BIN_DIR"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(out)


def helm_binary() -> str:
    helm = cluster_bin_dir() / "helm"
    if not helm.is_file():
        missing(f"no helm at {helm} (make helm builds it)")
    return str(helm)


def render_chart(*sets: str) -> list[dict[str, Any]]:
    """The objects of release ``r`` in namespace flux-workflows, with ``--set`` each of ``sets``."""
    args = [arg for s in sets for arg in ("--set", s)]
    out = subprocess.run(
        [helm_binary(), "template", "r", str(CHART), "-n", "flux-workflows", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]
