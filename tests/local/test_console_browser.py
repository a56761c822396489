"""The web console in a real browser: `flux ui` over runs of the examples, read by
headless Chromium, with what each page shows asserted and screenshots kept.

Runs cover every outcome the console must explain: succeeded, failed, paused,
retried, timed out with a fallback, rolled back, and map/parallel fan-out.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from console_server import FluxMain
from console_server import console as console_at
from workflows.harness import reference

from browser import Browser, Page, Session, chromium_path
from example_cases import EXAMPLES

# (key, FILE:WORKFLOW, input as JSON or None, expected exit code)
RUNS = [
    ("hello", f"{EXAMPLES}/hello.py:hello", '"World"', 0),
    ("failed", reference("outcomes.py", "boom"), None, 1),
    ("paused", f"{EXAMPLES}/pause_approval.py:approval_workflow", None, 3),
    ("retried", f"{EXAMPLES}/fallback_strategy.py:fallback_strategy_workflow", None, 0),
    ("rolled_back", f"{EXAMPLES}/rollback_operations.py:rollback_operations_workflow", None, 0),
    ("timeout", f"{EXAMPLES}/timeout_handling.py:timeout_workflow", None, 0),
    ("map", f"{EXAMPLES}/map_tasks.py:mapping_workflow", None, 0),
    ("parallel", f"{EXAMPLES}/parallel_tasks.py:parallel_workflow", None, 0),
]


@dataclass
class Console:
    url: str
    runs: dict[str, str]  # key of RUNS -> run id
    browser: Browser  # a browser of its own per page: for pages read in virtual time
    session: Session  # one browser for every other page

    def page(self, path: str, wait_ms: int = 0) -> Page:
        if wait_ms:
            return self.browser.dom(self.url + path, wait_ms)
        return self.session.dom(self.url + path)

    def screenshot(self, path: str, name: str) -> None:
        self.session.dom(self.url + path)
        self.session.screenshot(name)

    def run_page(self, key: str) -> Page:
        return self.page(f"/runs/{self.runs[key]}")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    browser = Browser(chromium_path())
    root = tmp_path_factory.mktemp("console")
    flux = FluxMain(home=root / "home", cwd=root)
    runs: dict[str, str] = {}
    for key, ref, value, code in RUNS:
        result = flux("run", ref, *(["--input", value] if value else []))
        assert result.returncode == code, result.stderr
        match = re.search(r"run (\w+) started", result.stderr)
        assert match, result.stderr
        runs[key] = match.group(1)
    with console_at(flux, root / "ui.log") as url:
        session = Session(browser.executable)
        try:
            yield Console(url, runs, browser, session)
        finally:
            session.close()


def test_the_runs_page_lists_every_run_and_refreshes_itself_live(console: Console) -> None:
    page = console.page("/runs", wait_ms=5000)
    rows = page.by_id("run-rows")
    for workflow in ("hello", "boom", "approval_workflow", "fallback_strategy_workflow"):
        assert workflow in rows
    assert "PAUSED" in rows and "FAILED" in rows and "COMPLETED" in rows
    assert page.by_id("run-count") == f"{len(RUNS)} runs"
    # live.js replaced the rows with what the server rendered again, without error.
    assert int(page.attribute("run-rows", "data-live-refreshes") or 0) >= 1
    assert page.attribute("run-rows", "data-live-error") is None
    assert console.runs["hello"] in page.by_id("run-rows")
    console.screenshot("/runs", "console-runs")


def test_the_runs_page_filters_by_state_and_workflow(console: Console) -> None:
    failed = console.page("/runs?state=FAILED")
    assert failed.by_id("run-count") == "1 run match"
    assert console.runs["failed"] in failed.by_id("run-rows")
    assert console.runs["hello"] not in failed.by_id("run-rows")
    by_workflow = console.page("/runs?workflow=mapping_workflow&since=1h")
    assert by_workflow.by_id("run-count") == "1 run match"


def test_a_succeeded_run_shows_its_input_output_graph_and_timeline(console: Console) -> None:
    page = console.run_page("hello")
    assert page.by_id("run-input") == '"World"'
    assert page.by_id("run-output") == '"Hello, World"'
    assert page.by_id("run-state") == "COMPLETED"
    nodes = page.rows("data-node")
    assert list(nodes) == ["start", "say_hello", "completed"]
    assert list(page.rows("data-call")) == ["say_hello#0"]
    assert "COMPLETED" in page.rows("data-call")["say_hello#0"]
    console.screenshot(f"/runs/{console.runs['hello']}", "console-succeeded")


def test_a_failed_run_shows_the_error_and_which_call_failed(console: Console) -> None:
    page = console.run_page("failed")
    assert page.by_id("run-error") == "ValueError: boom"
    assert page.by_id("run-state") == "FAILED"
    assert "FAILED" in page.rows("data-call")["explode#0"]
    assert 'class="node s-failed" data-node="explode"' in page.dom
    console.screenshot(f"/runs/{console.runs['failed']}", "console-failed")


def test_a_paused_run_shows_the_exact_command_that_resumes_it(console: Console) -> None:
    page = console.run_page("paused")
    run_id = console.runs["paused"]
    assert page.by_id("resume-command") == (
        f"flux resume {run_id} --pause wait_for_approval --input JSON"
    )
    assert "Waiting at pause" in page.by_id("run-pause")
    assert page.by_id("run-state") == "PAUSED"
    assert "PAUSED" in page.rows("data-call")["pause#0"]
    console.screenshot(f"/runs/{run_id}", "console-paused")


def test_a_retried_call_shows_its_attempts_and_waits_and_the_fallback(console: Console) -> None:
    page = console.run_page("retried")
    assert "2 calls, 4 attempts" in page.by_id("summary")
    row = re.search(r'<tr class="call" data-call="always_failing#0" data-marks="([^"]*)"', page.dom)
    assert row and row.group(1).split() == ["attempt-failed", "fallback", "retry-wait"]
    cells = page.rows("data-call")["always_failing#0"].split()
    assert cells[1:3] == ["COMPLETED", "3"]  # status, attempts
    console.screenshot(f"/runs/{console.runs['retried']}", "console-retried")


def test_a_rolled_back_call_and_a_timed_out_call_are_marked(console: Console) -> None:
    rolled = console.run_page("rolled_back")
    assert 'data-call="reserve_resources#0" data-marks="rollback"' in rolled.dom
    assert "FAILED" in rolled.rows("data-call")["reserve_resources#0"]
    timed = console.run_page("timeout")
    assert 'data-call="slow_task#0" data-marks="fallback timeout"' in timed.dom
    console.screenshot(f"/runs/{console.runs['rolled_back']}", "console-rolled-back")


def test_map_and_parallel_fan_out_are_grouped_in_the_graph(console: Console) -> None:
    mapped = console.run_page("map")
    assert list(mapped.rows("data-node")) == ["start", "process_item", "completed"]
    assert "\u00d73" in mapped.rows("data-node")["process_item"]
    assert mapped.dom.count('class="fan-out"') == 0  # one node: nothing side by side
    parallel = console.run_page("parallel")
    assert list(parallel.rows("data-node")) == ["start", "task1", "task2", "task3", "completed"]
    assert parallel.dom.count('class="fan-out"') == 1
    console.screenshot(f"/runs/{console.runs['parallel']}", "console-parallel")


def test_history_and_a_task_record(console: Console) -> None:
    run_id = console.runs["retried"]
    events = console.page(f"/runs/{run_id}/events")
    text = events.text()
    assert "12 events; showing 1 to 12" in text
    for kind in ("TASK_RETRY_STARTED", "TASK_RETRY_FAILED", "TASK_FALLBACK_STARTED"):
        assert kind in text
    record = console.page(f"/runs/{run_id}/calls/always_failing%230").text()
    assert "Attempts 3" in record
    assert "attempt 2 in" in record  # the retry's delay and cause, from the stored event
    console.screenshot(f"/runs/{run_id}/events", "console-history")


def test_the_workflows_page_gives_runs_and_success_rate(console: Console) -> None:
    page = console.page("/workflows")
    rows = page.text()
    assert re.search(r"hello 1 100%", rows), rows
    assert re.search(r"boom 1 0%", rows), rows
    assert re.search(r"approval_workflow 1 - PAUSED 1", rows), rows
    console.screenshot("/workflows", "console-workflows")


def test_a_taken_port_is_one_line_and_the_default_address_is_loopback(tmp_path: Path) -> None:
    flux = FluxMain(home=tmp_path / "home", cwd=tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flux("ui", "--port", str(port), timeout=30)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}"), result.stderr
    assert f"at http://127.0.0.1:{port}/" in lines[0]
