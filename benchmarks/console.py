"""How fast the web console opens big runs (issue 16: at most 1 s a page).

Executes two real runs on the embedded engine in a fresh FLUX_HOME: a
``map`` of 10,000 items, and a sequential workflow of 50,000 task calls
(100,003 history events). Then starts ``flux ui`` on a loopback port and
times each page of those runs over HTTP, as a browser would fetch it (the
server reads, aggregates and renders; nothing is cached between requests).

    .venv/bin/python benchmarks/console.py [--map-items N] [--calls N] [--repeat N]
        [--check] [--results benchmarks/RESULTS.md]

``--check`` exits 1 when a page's slowest time is over the budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

BUDGET_S = 1.0


async def item(x: int) -> int:
    return x + 1


def execute_runs(map_items: int, calls: int) -> dict[str, tuple[str, int]]:
    """Run the two workflows in this process; their run ids and event counts."""
    from flux import WorkflowExecutionContext, task, workflow

    step = task(item)

    @workflow
    async def big_map(ctx: WorkflowExecutionContext[int]) -> int:
        return sum(await step.map(range(ctx.input)))

    @workflow
    async def long_history(ctx: WorkflowExecutionContext[int]) -> int:
        value = 0
        for _ in range(ctx.input):
            value = await step(value)
        return value

    runs = {}
    for key, wf, n in (("map", big_map, map_items), ("sequential", long_history, calls)):
        started = time.perf_counter()
        ctx = wf.run(n)
        print(
            f"ran {key}: {n} calls, {len(ctx.events)} events, "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        runs[key] = (ctx.execution_id, len(ctx.events))
    return runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"{url}: HTTP {response.status}")
    return time.perf_counter() - started, len(body)


def wait_served(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("flux ui exited")
        try:
            fetch(url + "/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("flux ui did not start")


def pages(runs: dict[str, tuple[str, int]]) -> list[tuple[str, str]]:
    map_id, map_events = runs["map"]
    last_item = (map_events - 2) // 2 - 1  # 2 events a call, 2 of the workflow
    seq_id, seq_events = runs["sequential"]
    big_map, long_history = f"map of {last_item + 1}", f"{seq_events} events"
    return [
        ("runs list", "/runs"),
        ("workflows", "/workflows"),
        (f"{big_map}: run page", f"/runs/{map_id}"),
        (f"{big_map}: last calls page", f"/runs/{map_id}?calls={last_item // 100 + 1}"),
        (f"{big_map}: history, first page", f"/runs/{map_id}/events"),
        (f"{big_map}: one task's record", f"/runs/{map_id}/calls/item%23{last_item}"),
        (f"{long_history}: run page", f"/runs/{seq_id}"),
        (f"{long_history}: history, first page", f"/runs/{seq_id}/events"),
        (f"{long_history}: history, middle page", f"/runs/{seq_id}/events?after={seq_events // 2}"),
        (f"{long_history}: history, last page", f"/runs/{seq_id}/events?after={seq_events - 50}"),
    ]


def measure(base: str, runs: dict[str, tuple[str, int]], repeat: int) -> list[dict[str, Any]]:
    rows = []
    for label, path in pages(runs):
        fetch(base + path)  # the first request warms the OS page cache, as any reopening would
        times, size = [], 0
        for _ in range(repeat):
            seconds, size = fetch(base + path)
            times.append(seconds)
        rows.append(
            {
                "page": label,
                "median": statistics.median(times),
                "max": max(times),
                "kib": size / 1024,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| page | median s | slowest s | size KiB |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['page']} | {r['median']:.3f} | {r['max']:.3f} | {r['kib']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map-items", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=50_000, help="sequential calls, 2 events each")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page")
    parser.add_argument("--check", action="store_true", help=f"exit 1 over {BUDGET_S:g} s")
    parser.add_argument("--results", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flux-console-bench-") as home:
        os.environ["FLUX_HOME"] = home
        runs = execute_runs(args.map_items, args.calls)
        port = free_port()
        entry = "from flux.local.cli import main; main()"
        server = subprocess.Popen(
            [sys.executable, "-c", entry, "ui", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_served(base, server)
            rows = measure(base, runs, args.repeat)
        finally:
            server.terminate()
            server.wait(timeout=10)
    report = table(rows)
    print(report)
    if args.results:
        command = "make bench-console" if os.environ.get("MAKELEVEL") else " ".join(sys.argv)
        with args.results.open("a") as out:
            out.write(
                f"\n## Web console: time to open big runs (issue 16)\n\n"
                f"{dt.date.today().isoformat()}, {platform.machine()}, "
                f"{os.cpu_count()} CPUs shared with other work (load average "
                f"{os.getloadavg()[0]:.1f}); budget {BUDGET_S:g} s a page. "
                f"Runs: map of {args.map_items} items; {args.calls} sequential calls "
                f"({runs['sequential'][1]} events). {args.repeat} timed requests a page "
                f"after one untimed, over HTTP on loopback to `flux ui`.\n\n"
                f"Command: `{command}`\n\n{report}\n"
            )
    slow = [r["page"] for r in rows if r["max"] > BUDGET_S]
    if args.check and slow:
        raise SystemExit(f"over {BUDGET_S:g} s: {', '.join(slow)}")


if __name__ == "__main__":
    main()
