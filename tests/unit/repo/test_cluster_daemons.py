"""cluster/scripts/lib.sh writes each daemon's command line once
(``start_cluster_daemon``), for cluster-up.sh and restart-daemon.sh alike."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[3] / "cluster" / "scripts"


def _daemons() -> list[str]:
    listed = re.search(r"^DAEMONS=\(([^)]*)\)", (SCRIPTS / "lib.sh").read_text(), re.M)
    assert listed is not None
    return listed[1].split()


def test_every_daemon_has_its_start_command_and_only_lib_sh_writes_them() -> None:
    lib = (SCRIPTS / "lib.sh").read_text()
    body = lib.split("start_cluster_daemon() {", 1)[1].split("\n}\n", 1)[0]
    labels = re.findall(r"^    ([a-z-]+)\)$", body, re.M)
    assert sorted(labels) == sorted(_daemons())
    for script in SCRIPTS.glob("*.sh"):
        if script.name != "lib.sh":
            # cluster-up.sh once wrote them inline; a copy would drift from lib.sh's.
            text = script.read_text()
            assert not [d for d in _daemons() if f"start_daemon {d} " in text], script.name


def test_restart_refuses_an_unknown_daemon_before_stopping_anything() -> None:
    # Checked before root, the lock or any stop: this runs anywhere.
    proc = subprocess.run(
        ["bash", str(SCRIPTS / "restart-daemon.sh"), "kube-apiserver", "nope"],
        capture_output=True,
        text=True,
        env={**os.environ, "FLUX_E2E_LOCKED": "1"},
    )
    assert proc.returncode != 0
    assert "unknown daemon nope" in proc.stderr and "stopped" not in proc.stderr
