"""The chaos suite's short form (issue 14.3): ~20 runs of mixed workflows under ~20
random faults (leader SIGKILLs, deleted and evicted pods, restarts of the API
server, etcd, the kubelet and containerd), with two operator processes electing a
leader. Every run must end with its expected output, none lost or stuck, and the
side-effect ledger must show no step started again after history recorded it
settled. The full form is `make chaos` (benchmarks/chaos.py, ≥200 runs, ≥10 min).

The bounds are generous (a loaded 2-core machine restarts its API server slowly);
what may not happen, a wrong output or a step re-run after its completion, fails
it however slow the machine is. It restarts the cluster's daemons, so it needs
the local cluster (not FLUX_E2E_KUBECONFIG) and must not share it with another run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import chaos  # noqa: E402
from k8s_bench import Cluster as BenchCluster  # noqa: E402

SEED = int(os.environ.get("FLUX_CHAOS_SEED", "14"))


@pytest.mark.timeout(1800)
def test_short_chaos_loses_nothing_and_reruns_no_completed_step(
    cluster: Cluster, crds: None
) -> None:
    if not cluster.local:
        pytest.fail(
            "the chaos test restarts the local cluster's daemons: it needs `make cluster-up`"
        )
    settings = chaos.Settings(
        runs=20, duration=200, interval=5, seed=SEED, max_faults=20, settle=600, quiet=240
    )
    outcome = chaos.run(
        settings, BenchCluster(cluster.kubeconfig, cluster.kubectl_path, cluster.image)
    )
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    text = chaos.report(outcome, f"tests/e2e/test_chaos_short.py (seed {SEED})", load)
    print(text)
    found = outcome.findings
    assert outcome.error is None, text
    assert not found.wrong, text
    assert not found.rerun_after_completion, text
    assert not found.lost, text
    assert not found.stuck, text
    assert outcome.created == settings.runs, text
    # Not vacuous: faults did happen, and the tasks did write their ledger.
    assert sum(outcome.injected.values()) >= 8, text
    assert outcome.ledger_lines >= 2 * settings.runs, text
