"""Every example in the web console on Kubernetes, in a real browser.

Each case of tests/example_cases.py runs as a WorkflowRun in one namespace (with
the shared home volume, as tests/e2e/test_examples_on_k8s.py runs them): the
ones that pause both left at their pause and resumed, and one run that fails
(the configured example without its secret). All runs are created at once and
awaited together. Then the chart's console is deployed in that namespace and one
headless Chromium reads, through a port-forward, each run's page (summary,
timeline, graph), its history and the record of each call that retried, fell
back or rolled back. What the pages show is checked against each run's own
history as kubectl reads it and against the table's expected outputs, as
tests/local/test_console_examples.py does on the embedded executor; each run
page is kept as a screenshot under test-artefacts/.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from console_deploy import deployed_console, port_forward
from flux_runs import full_history, resume, run_manifest, wait_phase, workflow_manifest
from test_examples_on_k8s import workflow_name

from browser import Page, Session, chromium_path
from console_marks import MARKS, expected_marks, outcome
from example_cases import API_KEY, CASES, EXAMPLES, Case
from flux import codec

if TYPE_CHECKING:
    from conftest import Cluster, Operator

pytestmark = pytest.mark.e2e

CONFIGURED = "configured_task.py:configured_workflow"
NO_SECRET = "configured-without-secret"  # the Workflow of the run that fails


@dataclass(frozen=True)
class ExampleRun:
    name: str  # the WorkflowRun's name
    case: Case
    state: str  # what the run page must say: COMPLETED, PAUSED or FAILED
    resume: bool = True  # for a case with a pause: resume it, or leave it paused
    workflow: str = ""  # the Workflow it runs: the case's, unless named

    @property
    def workflow_ref(self) -> str:
        return self.workflow or workflow_name(self.case.ref)


def _runs() -> list[ExampleRun]:
    runs = []
    for index, case in enumerate(CASES):
        if case.resume is None:
            runs.append(ExampleRun(f"ex-{index}", case, "COMPLETED"))
        else:
            runs.append(ExampleRun(f"ex-{index}-paused", case, "PAUSED", resume=False))
            runs.append(ExampleRun(f"ex-{index}-resumed", case, "COMPLETED"))
    # The configured example without its secret: its task fails before running.
    [configured] = [c for c in CASES if c.ref == CONFIGURED]
    failing = Case(configured.ref, configured.input)
    runs.append(ExampleRun("ex-no-secret", failing, "FAILED", workflow=NO_SECRET))
    return runs


RUNS = _runs()


@dataclass(frozen=True)
class Ran:
    phase: str
    history: list[dict[str, Any]]  # the run's whole history, as kubectl reads it


def _calls(history: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each call of the run (task, built-in, pause), with its events, in start order."""
    [own] = {e["sourceId"] for e in history if e["type"] == "WORKFLOW_STARTED"}
    calls: dict[str, list[dict[str, Any]]] = {}
    for event in history:
        if event["sourceId"] != own and event["type"].startswith("TASK_"):
            calls.setdefault(event["sourceId"], []).append(event)
    return calls


def _history_marks(page: Page, call: str) -> str:
    """The marks of a call's bar that stand for history, without the stages of its
    pods (those come from the pods still there, not from history)."""
    marks = (page.attribute_of("data-call", call, "data-marks") or "").split()
    return " ".join(m for m in marks if not m.startswith("pod-"))


def _run_all(cluster: Cluster, operator: Operator, ns: str, home: dict[str, Any]) -> dict[str, Ran]:
    """Every run of RUNS created at once, then awaited together: the paused ones
    that are to be resumed resumed once all runs reached a first stop."""
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "example-api"},
            "stringData": {"token": API_KEY},
        },
        ns,
    )
    secrets = {"API_KEY": {"secretName": "example-api", "key": "token"}}
    for ref in dict.fromkeys(case.ref for case in CASES):
        file, function = ref.split(":")
        source = (EXAMPLES / file).read_text()
        manifest = workflow_manifest(
            workflow_name(ref), source, function, homeVolume=home, secrets=secrets
        )
        cluster.apply(manifest, ns)
    file, function = CONFIGURED.split(":")
    source = (EXAMPLES / file).read_text()
    cluster.apply(workflow_manifest(NO_SECRET, source, function, homeVolume=home), ns)
    for run in RUNS:
        cluster.apply(run_manifest(run.name, run.workflow_ref, run.case.input), ns)

    phases = {}
    for run in RUNS:
        status = wait_phase(
            cluster, operator, ns, run.name, "Succeeded", "Failed", "Paused", timeout=900
        )
        phases[run.name] = status["phase"]
        if run.case.resume is not None and status["phase"] == "Paused":
            pause, value = run.case.resume
            assert status["pause"]["name"] == pause, (run.name, status["pause"])
            if run.resume:
                resume(cluster, ns, run.name, codec.encode(value))
    for run in RUNS:
        if run.case.resume is not None and run.resume:
            status = wait_phase(cluster, operator, ns, run.name, "Succeeded", "Failed", timeout=300)
            phases[run.name] = status["phase"]
    return {run.name: Ran(phases[run.name], full_history(cluster, ns, run.name)) for run in RUNS}


def _check_run(session: Session, url: str, ns: str, run: ExampleRun, ran: Ran) -> None:
    run_url = f"{url}/runs/{ns}.{run.name}"
    page = session.dom(run_url)
    session.screenshot(f"console-k8s-example-{run.name}")
    case = run.case

    # Summary: the state, then the output, the error or the pause.
    assert page.by_id("run-state") == run.state, (ran.phase, page.by_id("run-state"))
    assert page.by_id("run-input") == json.dumps(case.input, indent=2)
    if run.state == "COMPLETED":
        shown = codec.decode(json.loads(page.by_id("run-output")))
        assert case.check(shown) if case.check else shown == case.output, shown
    if run.state == "FAILED":
        error = page.by_id("run-error")
        assert "SecretsNotFoundError" in error and "API_KEY" in error, error
    if run.state == "PAUSED":
        assert case.resume is not None
        pause = case.resume[0]
        assert page.by_id("run-pause").startswith(f"Waiting at pause {pause} "), page.by_id(
            "run-pause"
        )
        assert page.by_id("resume-command") == (
            f"kubectl patch fxrun {run.name} -n {ns} --subresource=status --type=merge "
            """-p '{"status":{"resume":{"input":JSON}}}'"""
        )

    # Timeline: every call of the run in the order it started, how it ended,
    # its attempts and what happened inside it.
    calls = _calls(ran.history)
    rows = page.rows("data-call")
    assert list(rows) == list(calls)
    for call, events in calls.items():
        ended = outcome(e["type"] for e in events)
        attempts = 1 + sum(e["type"] == "TASK_RETRY_STARTED" for e in events)
        assert f" {ended} {attempts} " in f" {rows[call]} ", (call, rows[call])
        marks = expected_marks((e["type"], e.get("value")) for e in events)
        assert _history_marks(page, call) == marks, call
    for call, expected in MARKS.get(case.ref, {}).items():
        assert _history_marks(page, call) == expected, call

    # Graph: from start, through every task called, to how the run ended.
    nodes = list(page.rows("data-node"))
    assert nodes[0] == "start"
    assert nodes[-1] == run.state.lower(), nodes
    tasks = {e["name"] for e in ran.history if e["type"] == "TASK_STARTED"}
    assert tasks <= set(nodes), (tasks, nodes)

    # History: every event, every kind of event.
    history = session.dom(f"{run_url}/events").text()
    count = len(ran.history)
    assert f"{count} event{'' if count == 1 else 's'}; showing 1 to {count}" in history
    for kind in {e["type"] for e in ran.history}:
        assert kind in history, kind

    # The record of each call that retried, fell back or rolled back.
    for call, events in calls.items():
        steps = expected_marks((e["type"], e.get("value")) for e in events).split()
        if not steps:
            continue
        record = session.dom(f"{run_url}/calls/{urllib.parse.quote(call, safe='')}")
        text = record.text()
        attempts = 1 + sum(e["type"] == "TASK_RETRY_STARTED" for e in events)
        assert f"Attempts {attempts}" in text, text
        for mark in steps:
            assert f" {mark} " in f" {text} ", (mark, text)


def _check_lists(session: Session, url: str, ns: str) -> None:
    page = session.dom(url + "/runs")
    assert page.by_id("run-count") == f"{len(RUNS)} runs"
    rows = page.by_id("run-rows")
    for run in RUNS:
        assert f"{ns}.{run.name}" in rows, run.name
    session.screenshot("console-k8s-example-runs")
    workflows = session.dom(url + "/workflows").text()
    for run in RUNS:
        assert run.workflow_ref in workflows, run.workflow_ref


@pytest.mark.timeout(1500)
def test_every_example_run_on_kubernetes_as_the_console_shows_it(
    cluster: Cluster, flux_ns: str, operator: Operator, shared_home: dict[str, Any]
) -> None:
    executable = chromium_path()
    ran = _run_all(cluster, operator, flux_ns, shared_home)
    with (
        deployed_console(cluster, flux_ns) as deployment,
        port_forward(cluster, flux_ns, deployment) as url,
    ):
        session = Session(executable)
        problems = []
        try:
            try:
                _check_lists(session, url, flux_ns)
            except AssertionError as error:
                problems.append(f"the runs and workflows pages: {error}")
            for run in RUNS:
                try:
                    _check_run(session, url, flux_ns, run, ran[run.name])
                except AssertionError as error:
                    problems.append(f"{run.name} ({run.case.ref}, {run.state}): {error}")
        finally:
            session.close()
    assert not problems, "\n\n".join(problems)


def test_every_example_has_a_run_in_the_console_test() -> None:
    assert {run.case.ref for run in RUNS} == {case.ref for case in CASES}
    assert {run.state for run in RUNS} == {"COMPLETED", "PAUSED", "FAILED"}
    assert len({run.name for run in RUNS}) == len(RUNS)
    assert all(re.fullmatch(r"[a-z0-9-]{1,63}", run.name) for run in RUNS)
