"""Per-task and per-run overhead of the embedded engine, as a ratio to plain asyncio.

Each scenario runs in its own subprocess (so peak RSS is per scenario) with a
fresh FLUX_HOME, and measures the same task functions called with plain
asyncio in that same process, right before the durable run. Figures are
medians over ``--repeat`` subprocesses.

    .venv/bin/python benchmarks/local_engine.py [--scenario NAME] [--repeat N]
    .venv/bin/python benchmarks/local_engine.py --check [--results benchmarks/RESULTS.md]
    .venv/bin/python benchmarks/local_engine.py --baseline OTHER_CHECKOUT/operator [--repeat N]

``--baseline`` runs each scenario with flux from another checkout and from
this tree in alternating processes (on a shared machine, compare the ratios).

Two kinds of scenario:

* one run of many tasks (``sequential``, ``map``, ...): the cost of a durable task;
* many small runs (``small_runs_*``: batches of 100 runs of 0, 1 or 3 tasks
  each after one untimed run; the median batch): the cost of a run, through
  ``wf.run`` as users call it, or through one ``LocalExecutor`` on one open
  store (``small_runs_3_executor``). The run of no task is the fixed cost of a
  run.

Targets: at most 250 us per durable task, at most 300 MB peak RSS for the
10,000-item map (issue 2); a small run's fixed cost at most 1 ms (issue 17).

``--check`` is the regression guard (``make bench-guard``, outside ``make
test``): it measures the guarded figures (medians of ``--repeat``, 5 unless
given) and exits 1 when one exceeds its figure on the ``local-engine-guard:``
line of the results file by more than 25%, also once corrected for the
machine's own change of speed (plain asyncio in the same processes). The figures
are of one machine: record new ones (the plain run prints the line) when the
machine changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCENARIOS = {
    "sequential": 1_000,
    "map": 10_000,
    "graph_chain": 1_000,
    "sequential_sync": 1_000,
}
SMALL_RUNS = 100
SMALL_BATCHES = 5
# Tasks in each small run, and whether runs go through one LocalExecutor.
SMALL_SCENARIOS = {
    "small_runs_3": (3, False),
    "small_runs_1": (1, False),
    "small_runs_0": (0, False),
    "small_runs_3_executor": (3, True),
}

RESULTS = Path(__file__).with_name("RESULTS.md")
GUARD_PREFIX = "local-engine-guard:"
TOLERANCE = 0.25
CHECK_REPEAT = 5
# Recorded figure -> (scenario, measured field).
GUARDED = {
    "sequential_us_per_task": ("sequential", "durable_us_per_task"),
    "small_runs_3_us_per_run": ("small_runs_3", "us_per_run"),
    "small_runs_0_us_per_run": ("small_runs_0", "us_per_run"),
    # Not guarded: the machine's own speed, as plain asyncio.run of the same calls.
    "plain_us_per_run": ("small_runs_0", "plain_us_per_run"),
}
PROBE = "plain_us_per_run"
COSTS = [name for name in GUARDED if name != PROBE]


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


def build_small(tasks: int) -> tuple[Any, Any]:
    """A workflow of ``tasks`` sequential tasks, and its plain-asyncio twin."""
    from flux import WorkflowExecutionContext, task, workflow

    step = task(noop)

    @workflow
    async def small(ctx: WorkflowExecutionContext[int]) -> int:
        value: int = ctx.input
        for _ in range(tasks):
            value = await step(value)
        return value

    async def plain(value: int) -> int:
        for _ in range(tasks):
            value = await noop(value)
        return value

    return small, plain


def run_small(name: str) -> dict[str, Any]:
    tasks, through_executor = SMALL_SCENARIOS[name]
    durable, plain = build_small(tasks)
    if through_executor:
        from flux.local.executor import LocalExecutor
        from flux.local.loader import source_of
        from flux.local.store import Store

        store = Store()
        executor = LocalExecutor(store)
        source = source_of(durable)

        def one(value: int) -> Any:
            run_id = executor.create_run(durable, value, source)
            return asyncio.run(executor.execute(durable, run_id)).output

    else:

        def one(value: int) -> Any:
            return durable.run(value).output

    one(-1)  # untimed: the first run opens the store and fills caches
    # The median of several batches, so that a burst of other work on a shared
    # machine moves one batch, not the figure.
    plain_batches: list[float] = []
    durable_batches: list[float] = []
    for batch in range(SMALL_BATCHES):
        values = range(batch * SMALL_RUNS, (batch + 1) * SMALL_RUNS)
        started = time.perf_counter()
        for i in values:
            asyncio.run(plain(i))
        plain_batches.append(time.perf_counter() - started)
        started = time.perf_counter()
        outputs = [one(i) for i in values]
        durable_batches.append(time.perf_counter() - started)
        if outputs != [i + tasks for i in values]:
            raise SystemExit(f"{name}: wrong outputs {outputs[:5]}...")
    us_per_run = statistics.median(durable_batches) / SMALL_RUNS * 1e6
    plain_s = statistics.median(plain_batches)
    return {
        "scenario": name,
        "runs": SMALL_RUNS,
        "tasks_per_run": tasks,
        "plain_us_per_run": plain_s / SMALL_RUNS * 1e6,
        "us_per_run": us_per_run,
        "us_per_task": us_per_run / tasks if tasks else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_scenario(name: str) -> dict[str, Any]:
    if name in SMALL_SCENARIOS:
        return run_small(name)
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


def run_once(name: str, pythonpath: Path | None = None) -> dict[str, Any]:
    """The figures of one process running ``name`` (flux from ``pythonpath`` if given)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    out = subprocess.run(
        [sys.executable, __file__, "--scenario", name],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure(name: str, repeat: int) -> dict[str, Any]:
    """Every figure of ``name`` as the median over ``repeat`` fresh processes."""
    return median_of([run_once(name) for _ in range(repeat)])


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric field's median over ``runs`` (the other fields as in the first)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = statistics.median(r[key] for r in runs)
    return merged


# ------------------------------------------------------------------ the guard


class GuardLineError(ValueError):
    """The results file has no usable ``local-engine-guard:`` line."""


def parse_guard_line(text: str) -> dict[str, float]:
    """The recorded figures of the one ``local-engine-guard:`` line in ``text``."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(GUARD_PREFIX)]
    if len(lines) != 1:
        raise GuardLineError(
            f"expected one line starting with {GUARD_PREFIX!r}, found {len(lines)}"
        )
    figures: dict[str, float] = {}
    for pair in lines[0][len(GUARD_PREFIX) :].split():
        match = re.fullmatch(r"([a-z0-9_]+)=([0-9]+(?:\.[0-9]+)?)", pair)
        if match is None:
            raise GuardLineError(f"{pair!r} in the guard line is not name=number")
        name, value = match[1], float(match[2])
        if name not in GUARDED:
            raise GuardLineError(f"unknown figure {name!r}; known: {', '.join(GUARDED)}")
        if not (math.isfinite(value) and value > 0):
            raise GuardLineError(f"{name} must be a positive number, not {match[2]}")
        figures[name] = value
    missing = [name for name in GUARDED if name not in figures]
    if missing:
        raise GuardLineError(f"the guard line lacks {', '.join(missing)}")
    return figures


def guard_line(figures: dict[str, float]) -> str:
    return GUARD_PREFIX + "".join(f" {name}={figures[name]:.1f}" for name in GUARDED)


def regressions(
    recorded: dict[str, float], measured: dict[str, float], tolerance: float = TOLERANCE
) -> list[str]:
    """One line per cost measured more than ``tolerance`` above its record.

    A cost counts as regressed when it rose by more than ``tolerance`` both as
    measured and once divided by the machine's own change of speed (plain
    asyncio in the same processes): the host of this shared machine alone moves
    every figure by a third within minutes, the code's share of a run does not.
    """
    speed = measured[PROBE] / recorded[PROBE]
    lines = []
    for name in COSTS:
        change = measured[name] / recorded[name]
        if change > 1 + tolerance and change / speed > 1 + tolerance:
            lines.append(
                f"{name}: {measured[name]:.1f} us against {recorded[name]:.1f} recorded "
                f"({change - 1:+.0%}; {change / speed - 1:+.0%} for the machine's speed, "
                f"whose plain asyncio moved {speed - 1:+.0%}; limit +{tolerance:.0%})"
            )
    return lines


def measure_guarded(repeat: int) -> dict[str, float]:
    # Rounds of one process per scenario rather than all of a scenario's processes
    # in a row: a burst of other work on the machine then moves one sample of
    # each figure, not every sample of one.
    scenarios = list(dict.fromkeys(scenario for scenario, _ in GUARDED.values()))
    samples: dict[str, list[dict[str, Any]]] = {scenario: [] for scenario in scenarios}
    for _ in range(repeat):
        for scenario in scenarios:
            samples[scenario].append(run_once(scenario))
    medians = {scenario: median_of(runs) for scenario, runs in samples.items()}
    return {name: float(medians[scenario][field]) for name, (scenario, field) in GUARDED.items()}


def check(results: Path, repeat: int) -> int:
    try:
        recorded = parse_guard_line(results.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {results}: {exc}", file=sys.stderr)
        return 2
    except GuardLineError as exc:
        print(f"error: {results}: {exc}", file=sys.stderr)
        return 2
    busy = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if busy > cpus:
        print(
            f"warning: the machine is busy (load average {busy:.1f} on {cpus} CPUs); "
            "the figures may be inflated",
            file=sys.stderr,
        )
    measured = measure_guarded(repeat)
    print(f"{'figure':<26}{'recorded us':>13}{'measured us':>13}{'change':>9}")
    for name in GUARDED:
        change = measured[name] / recorded[name] - 1
        print(f"{name:<26}{recorded[name]:>13.1f}{measured[name]:>13.1f}{change:>+9.0%}")
    print(f"({PROBE}: the machine's speed, for reference; not guarded)")
    print(f"medians of {repeat} processes; load average {os.getloadavg()[0]:.2f}")
    failed = regressions(recorded, measured)
    for line in failed:
        print(f"REGRESSED {line}", file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------- the CLI


def print_tables(repeat: int) -> None:
    print(f"medians of {repeat} processes; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'scenario':<24}{'tasks':>7}{'plain us/task':>15}{'durable us/task':>17}"
        f"{'ratio':>9}{'peak RSS MB':>13}"
    )
    figures: dict[str, float] = {}
    for name in SCENARIOS:
        row = measure(name, repeat)
        if name == "sequential":
            figures["sequential_us_per_task"] = row["durable_us_per_task"]
        print(
            f"{name:<24}{row['tasks']:>7}{row['plain_us_per_task']:>15.1f}"
            f"{row['durable_us_per_task']:>17.1f}{row['ratio']:>9.1f}"
            f"{row['peak_rss_mb']:>13.1f}"
        )
    print()
    print(
        f"{'scenario':<24}{'runs':>7}{'tasks/run':>11}{'plain us/run':>14}"
        f"{'us/run':>10}{'us/task':>10}"
    )
    for name in SMALL_SCENARIOS:
        row = measure(name, repeat)
        figures[f"{name}_us_per_run"] = row["us_per_run"]
        if name == "small_runs_0":
            figures[PROBE] = row["plain_us_per_run"]
        per_task = f"{row['us_per_task']:.1f}" if row["us_per_task"] is not None else "-"
        print(
            f"{name:<24}{row['runs']:>7}{row['tasks_per_run']:>11}"
            f"{row['plain_us_per_run']:>14.1f}{row['us_per_run']:>10.1f}{per_task:>10}"
        )
    print()
    print("to record these as the guard's figures in benchmarks/RESULTS.md:")
    print(guard_line(figures))


KEY_FIGURE = {name: "durable_us_per_task" for name in SCENARIOS} | {
    name: "us_per_run" for name in SMALL_SCENARIOS
}


def compare(baseline: Path, repeat: int) -> None:
    """Each scenario with flux from ``baseline`` and from this tree, processes alternating."""
    print(f"before: flux from {baseline}; after: this tree; medians of {repeat} processes each")
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    print(f"{'scenario':<24}{'figure':>21}{'before':>10}{'after':>10}{'before/after':>14}")
    for name, figure in KEY_FIGURE.items():
        before: list[dict[str, Any]] = []
        after: list[dict[str, Any]] = []
        for _ in range(repeat):
            before.append(run_once(name, baseline))
            after.append(run_once(name))
        b, a = median_of(before)[figure], median_of(after)[figure]
        print(f"{name:<24}{figure:>21}{b:>10.1f}{a:>10.1f}{b / a:>14.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS) + sorted(SMALL_SCENARIOS))
    parser.add_argument("--repeat", type=int, help="processes per scenario (the median is kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 on a regression over 25%%")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the guard line is")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="the operator/ folder of another checkout: compare it with this tree",
    )
    args = parser.parse_args()
    if args.repeat is not None and not 1 <= args.repeat <= 100:
        parser.error(f"--repeat must be between 1 and 100, not {args.repeat}")
    if args.baseline is not None and not (args.baseline / "flux" / "__init__.py").is_file():
        parser.error(f"--baseline {args.baseline} holds no flux package (give its operator/)")
    if args.scenario:
        with tempfile.TemporaryDirectory() as home:
            os.environ["FLUX_HOME"] = home
            print(json.dumps(run_scenario(args.scenario)))
        return
    if args.check:
        sys.exit(check(args.results, args.repeat or CHECK_REPEAT))
    if args.baseline is not None:
        compare(args.baseline.resolve(), args.repeat or 3)
        return
    print_tables(args.repeat or 3)


if __name__ == "__main__":
    main()
