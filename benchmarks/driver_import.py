"""What a driver pod's Python spends before its first line of work: importing
``flux.runtime.driver_main``, for one or more source trees side by side.

    .venv/bin/python benchmarks/driver_import.py [--runs 7] [TREE ...]

Each TREE is a directory holding the ``flux`` package (default: this
checkout's ``operator/``); e.g. an older commit unpacked with
``git archive <commit> operator | tar -x -C /tmp/old`` and given as
``/tmp/old/operator``. The trees are run in turn, alternating, so that a change
of the machine's load touches them alike; each run is a fresh process after one
warm-up (``.pyc`` files written). Reports, per tree, the median of
``-X importtime``'s cumulative figure for the module, the process's CPU time
(user + system, the interpreter's start included) and which heavy libraries
got imported. Say the load average (``uptime``) next to the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
from pathlib import Path

MODULE = "flux.runtime.driver_main"
HEAVY = ("kubernetes_asyncio", "pydantic", "aiohttp", "yaml", "flux.k8s.models")
_PROBE = (
    f"import sys, json, {MODULE}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
)
_CUMULATIVE = re.compile(rf"import time:\s+\d+ \|\s+(\d+) \| {re.escape(MODULE)}$", re.M)


def one_run(tree: Path) -> tuple[float, float, list[str]]:
    """Import time (ms, cumulative), CPU seconds of the process, heavy modules loaded."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PROBE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = _CUMULATIVE.search(done.stderr)
    if found is None:
        raise SystemExit(f"no import time for {MODULE} from {tree}:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return int(found.group(1)) / 1000, cpu, json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    trees = args.trees or [Path(__file__).resolve().parents[1] / "operator"]
    load = os.getloadavg()
    for tree in trees:
        one_run(tree)  # warm-up: byte-compiles
    samples: dict[Path, list[tuple[float, float, list[str]]]] = {t: [] for t in trees}
    for _ in range(args.runs):
        for tree in trees:
            samples[tree].append(one_run(tree))
    print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in load)}")
    for tree, runs in samples.items():
        imports = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(
            f"{tree}: import {imports:.0f} ms (median of {len(runs)}; "
            f"min {min(r[0] for r in runs):.0f}, max {max(r[0] for r in runs):.0f}), "
            f"process CPU {cpu * 1000:.0f} ms, heavy modules: {', '.join(runs[0][2]) or 'none'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
