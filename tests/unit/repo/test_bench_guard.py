"""The regression guard of benchmarks/local_engine.py (``make bench-guard``, issue 17)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "local_engine.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_engine", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load()
LINE = (
    "local-engine-guard: sequential_us_per_task=180.0 "
    "small_runs_3_us_per_run=1200.0 small_runs_0_us_per_run=700.0 plain_us_per_run=110.0"
)
RECORDED = {
    "sequential_us_per_task": 180.0,
    "small_runs_3_us_per_run": 1200.0,
    "small_runs_0_us_per_run": 700.0,
    "plain_us_per_run": 110.0,
}


def test_the_recorded_line_is_read_among_other_text() -> None:
    text = f"# Results\n\nsome table\n\n```\n{LINE}\n```\n"
    assert bench.parse_guard_line(text) == RECORDED


def test_the_line_it_prints_reads_back() -> None:
    assert bench.parse_guard_line(bench.guard_line(RECORDED)) == RECORDED


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no line at all", "found 0"),
        (f"{LINE}\n{LINE}", "found 2"),
        (LINE.replace("=180.0", "=fast"), "is not name=number"),
        (LINE.replace("=180.0", "=-1"), "is not name=number"),
        (LINE.replace("=180.0", "=0"), "must be a positive number"),
        (LINE.replace("=180.0", "=1e999"), "is not name=number"),
        (LINE + " bogus_us=3", "unknown figure 'bogus_us'"),
        (LINE.replace(" small_runs_0_us_per_run=700.0", ""), "lacks small_runs_0_us_per_run"),
        (LINE.replace(" plain_us_per_run=110.0", ""), "lacks plain_us_per_run"),
    ],
)
def test_a_bad_line_is_refused_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(bench.GuardLineError, match=message):
        bench.parse_guard_line(text)


def test_only_a_rise_over_a_quarter_is_a_regression() -> None:
    within = dict(RECORDED, sequential_us_per_task=180.0 * 1.25)
    assert bench.regressions(RECORDED, within) == []
    faster = {name: value / 2 for name, value in RECORDED.items()}
    assert bench.regressions(RECORDED, faster) == []
    slower = dict(RECORDED, small_runs_0_us_per_run=700.0 * 1.3)
    (line,) = bench.regressions(RECORDED, slower)
    assert line.startswith("small_runs_0_us_per_run: 910.0 us against 700.0 recorded (+30%;")


def test_a_machine_slower_as_a_whole_is_no_regression() -> None:
    slower_host = {name: value * 1.4 for name, value in RECORDED.items()}
    assert bench.regressions(RECORDED, slower_host) == []
    # The code's own share rose too: caught although the host is slower.
    both = dict(slower_host, small_runs_3_us_per_run=1200.0 * 1.4 * 1.3)
    (line,) = bench.regressions(RECORDED, both)
    assert line.startswith("small_runs_3_us_per_run:")
    assert "+30% for the machine's speed, whose plain asyncio moved +40%" in line


def test_a_faster_machine_does_not_flag_what_rose_less_than_a_quarter() -> None:
    faster_host = dict(
        {name: value * 1.2 for name, value in RECORDED.items()},
        plain_us_per_run=110.0 * 0.8,
    )
    assert bench.regressions(RECORDED, faster_host) == []


def test_the_results_file_has_a_usable_line() -> None:
    figures = bench.parse_guard_line(bench.RESULTS.read_text(encoding="utf-8"))
    assert set(figures) == set(bench.GUARDED)


def test_a_results_file_without_the_line_fails_in_one_line(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# nothing recorded\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {results}: expected one line starting with 'local-engine-guard:', found 0"
    ]
