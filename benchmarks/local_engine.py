"""Per-task overhead of the embedded engine, as a ratio to plain asyncio.

Each scenario runs in its own subprocess (so peak RSS is per scenario) with a
fresh FLUX_HOME, and measures the same task functions called with plain
asyncio in that same process, right before the durable run.

    .venv/bin/python benchmarks/local_engine.py [--scenario NAME] [--repeat N]

Targets (issue 2): at most 250 us per durable task; at most 300 MB peak RSS
for the 10,000-item map.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

SCENARIOS = {
    "sequential": 1_000,
    "map": 10_000,
    "graph_chain": 1_000,
    "sequential_sync": 1_000,
}


async def noop(x: int) -> int:
    return x + 1


def noop_sync(x: int) -> int:
    return x + 1


def build(name: str, n: int) -> tuple[Any, Any]:
    """The durable workflow for a scenario, and its plain-asyncio twin."""
    from flux import WorkflowExecutionContext, task, workflow
    from flux.tasks import Graph

    step = task(noop)
    step_sync = task(noop_sync)

    if name == "sequential":

        @workflow
        async def durable(ctx: WorkflowExecutionContext[int]) -> int:
            value = 0
            for _ in range(n):
                value = await step(value)
            return value

        async def plain() -> int:
            value = 0
            for _ in range(n):
                value = await noop(value)
            return value

    elif name == "sequential_sync":

        @workflow
        async def durable(ctx: WorkflowExecutionContext[int]) -> int:
            value = 0
            for _ in range(n):
                value = await step_sync(value)
            return value

        async def plain() -> int:
            loop = asyncio.get_running_loop()
            value = 0
            for _ in range(n):
                value = await loop.run_in_executor(None, noop_sync, value)
            return value

    elif name == "map":

        @workflow
        async def durable(ctx: WorkflowExecutionContext[int]) -> int:
            return sum(await step.map(range(n)))

        async def plain() -> int:
            return sum(await asyncio.gather(*(noop(i) for i in range(n))))

    elif name == "graph_chain":

        @workflow
        async def durable(ctx: WorkflowExecutionContext[int]) -> int:
            graph = Graph("chain")
            for i in range(n):
                graph.add_node(f"n{i}", step)
                if i:
                    graph.add_edge(f"n{i - 1}", f"n{i}")
            result: int = await graph.start_with("n0").end_with(f"n{n - 1}")(0)
            return result

        async def plain() -> int:
            value = 0
            for _ in range(n):
                value = await noop(value)
            return value

    else:
        raise SystemExit(f"unknown scenario {name}")
    return durable, plain


def run_scenario(name: str) -> dict[str, Any]:
    n = SCENARIOS[name]
    durable, plain = build(name, n)
    started = time.perf_counter()
    expected = asyncio.run(plain())
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    ctx = durable.run(0)
    durable_s = time.perf_counter() - started
    if ctx.output != expected:
        raise SystemExit(f"{name}: durable output {ctx.output!r} != plain {expected!r}")
    return {
        "scenario": name,
        "tasks": n,
        "events": len(ctx.events),
        "plain_us_per_task": plain_s / n * 1e6,
        "durable_us_per_task": durable_s / n * 1e6,
        "ratio": durable_s / plain_s if plain_s else float("inf"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (best is kept)")
    args = parser.parse_args()
    if args.scenario:
        with tempfile.TemporaryDirectory() as home:
            os.environ["FLUX_HOME"] = home
            print(json.dumps(run_scenario(args.scenario)))
        return
    print(
        f"{'scenario':<16}{'tasks':>7}{'plain us/task':>15}{'durable us/task':>17}"
        f"{'ratio':>9}{'peak RSS MB':>13}"
    )
    for name in SCENARIOS:
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--scenario", name],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["durable_us_per_task"])
        print(
            f"{name:<16}{best['tasks']:>7}{best['plain_us_per_task']:>15.1f}"
            f"{best['durable_us_per_task']:>17.1f}{best['ratio']:>9.1f}"
            f"{best['peak_rss_mb']:>13.1f}"
        )


if __name__ == "__main__":
    main()
