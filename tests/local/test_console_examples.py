"""Every example in the web console, in a real browser.

Each workflow of examples/ (the table of tests/example_cases.py, which
tests/local/test_examples.py keeps complete) runs on the embedded executor
into one FLUX_HOME: paused ones both left at their pause and resumed, and one
run that fails. `flux ui` serves that home once and one headless Chromium
loads, for each run, its page (summary, timeline, graph), its history and the
record of each call with retries, fallbacks or rollbacks. What the pages show
is checked against the run's own history and the table's expected outputs;
each run page is kept as a screenshot under test-artefacts/.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from console_server import FluxMain
from console_server import console as console_at

from browser import Page, Session, chromium_path
from console_marks import MARKS, expected_marks, outcome
from example_cases import CASES, EXAMPLES, Case
from flux import EventType, ExecutionEvent
from flux.codec import decode
from flux.local.loader import load_workflow


@dataclass(frozen=True)
class ExampleRun:
    key: str
    case: Case
    state: str  # what the run page must say: COMPLETED, PAUSED or FAILED
    resume: bool = True  # for a case with a pause: resume it, or leave it paused
    secret: bool = True  # give the run the secrets its case names


def _runs() -> list[ExampleRun]:
    runs = []
    for case in CASES:
        key = f"{case.ref}({json.dumps(case.input)})"
        if case.resume is None:
            runs.append(ExampleRun(key, case, "COMPLETED"))
        else:
            runs.append(ExampleRun(f"{key} paused", case, "PAUSED", resume=False))
            runs.append(ExampleRun(f"{key} resumed", case, "COMPLETED"))
    # The configured example without its secret: its task fails before running.
    [configured] = [c for c in CASES if c.ref == "configured_task.py:configured_workflow"]
    failing = Case(configured.ref, configured.input, env=configured.env)
    runs.append(ExampleRun("configured_task.py:configured_workflow without its secret", failing,
                           "FAILED", secret=False))  # fmt: skip
    return runs


RUNS = _runs()


@dataclass(frozen=True)
class Ran:
    run_id: str
    events: list[ExecutionEvent]


@dataclass
class Examples:
    url: str
    session: Session
    ran: dict[str, Ran]

    def page(self, path: str) -> Page:
        return self.session.dom(self.url + path)


def _run(run: ExampleRun) -> Ran:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in run.case.env.items():
            if run.secret:
                monkeypatch.setenv(name, value)
            else:
                monkeypatch.delenv(name, raising=False)
        wf = load_workflow(f"{EXAMPLES / run.case.ref}")
        ctx = wf.run(run.case.input)
        if run.case.resume is not None:
            assert ctx.is_paused, ctx.output
            if run.resume:
                ctx = wf.resume(ctx.execution_id, run.case.resume[1])
    return Ran(ctx.execution_id, list(ctx.events))


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Examples]:
    executable = chromium_path()
    root = tmp_path_factory.mktemp("console-examples")
    home = root / "home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("FLUX_HOME", str(home))
        monkeypatch.delenv("FLUX_SECRET_API_KEY", raising=False)
        ran = {run.key: _run(run) for run in RUNS}
    with console_at(FluxMain(home=home, cwd=root), root / "ui.log") as url:
        session = Session(executable)
        try:
            yield Examples(url, session, ran)
        finally:
            session.close()


def _calls(events: list[ExecutionEvent], run_id: str) -> dict[str, list[ExecutionEvent]]:
    """Each call of the run (task, built-in, pause), with its events, in start order."""
    calls: dict[str, list[ExecutionEvent]] = {}
    for event in events:
        if event.source_id != run_id and event.type.value.startswith("TASK_"):
            calls.setdefault(event.source_id, []).append(event)
    return calls


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.key)
def test_an_example_run_as_the_console_shows_it(examples: Examples, run: ExampleRun) -> None:
    ran = examples.ran[run.key]
    page = examples.page(f"/runs/{ran.run_id}")
    examples.session.screenshot(f"console-example-{_slug(run.key)}")
    case = run.case

    # Summary: the state, then the output, the error or the pause.
    assert page.by_id("run-state") == run.state
    assert page.by_id("run-input") == json.dumps(case.input, indent=2)
    if run.state == "COMPLETED":
        shown = decode(json.loads(page.by_id("run-output")))
        assert case.check(shown) if case.check else shown == case.output, shown
    if run.state == "FAILED":
        error = page.by_id("run-error")
        assert "SecretsNotFoundError" in error and "API_KEY" in error, error
    if run.state == "PAUSED":
        assert case.resume is not None
        pause = case.resume[0]
        assert page.by_id("run-pause").startswith(f"Waiting at pause {pause} ")
        assert page.by_id("resume-command") == (
            f"flux resume {ran.run_id} --pause {pause} --input JSON"
        )

    # Timeline: every call of the run in the order it started, how it ended,
    # its attempts and what happened inside it.
    calls = _calls(ran.events, ran.run_id)
    rows = page.rows("data-call")
    assert list(rows) == list(calls)
    for call, events in calls.items():
        ended = outcome(e.type for e in events)
        attempts = 1 + sum(e.type == EventType.TASK_RETRY_STARTED for e in events)
        assert f" {ended} {attempts} " in f" {rows[call]} ", (call, rows[call])
        marks = expected_marks((e.type, e.value) for e in events)
        assert page.attribute_of("data-call", call, "data-marks") == marks, call
    for call, marks in MARKS.get(case.ref, {}).items():
        assert page.attribute_of("data-call", call, "data-marks") == marks, call

    # Graph: from start, through every task called, to how the run ended.
    nodes = list(page.rows("data-node"))
    assert nodes[0] == "start"
    assert nodes[-1] == run.state.lower(), nodes
    tasks = {e.name for e in ran.events if e.type == EventType.TASK_STARTED}
    assert tasks <= set(nodes), (tasks, nodes)

    # History: every event, every kind of event.
    history = examples.page(f"/runs/{ran.run_id}/events").text()
    count = len(ran.events)
    assert f"{count} event{'' if count == 1 else 's'}; showing 1 to {count}" in history
    for kind in {e.type.value for e in ran.events}:
        assert kind in history, kind

    # The record of each call that retried, fell back or rolled back.
    for call, events in calls.items():
        marks = expected_marks((e.type, e.value) for e in events).split()
        if not marks:
            continue
        record = examples.page(f"/runs/{ran.run_id}/calls/{urllib.parse.quote(call, safe='')}")
        text = record.text()
        attempts = 1 + sum(e.type == EventType.TASK_RETRY_STARTED for e in events)
        assert f"Attempts {attempts}" in text, text
        for mark in marks:
            assert f" {mark} " in f" {text} ", (mark, text)


def test_the_runs_page_lists_every_example_run(examples: Examples) -> None:
    page = examples.page("/runs")
    assert page.by_id("run-count") == f"{len(RUNS)} runs"
    rows = page.by_id("run-rows")
    for ran in examples.ran.values():
        assert ran.run_id in rows
    workflows = examples.page("/workflows").text()
    for case in CASES:
        assert case.ref.split(":")[1] in workflows
    examples.session.screenshot("console-example-runs")


def test_every_example_has_a_run_in_the_console_test() -> None:
    assert {run.case.ref for run in RUNS} == {case.ref for case in CASES}
    assert {run.state for run in RUNS} == {"COMPLETED", "PAUSED", "FAILED"}
