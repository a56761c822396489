"""The console's view models: summary, timeline and graph built from history rows."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flux.events import EventType, ExecutionEvent
from flux.local.store import Store
from flux.ui import graph as graph_module
from flux.ui.graph import build_graph
from flux.ui.source import RunQuery, RunRow, Step
from flux.ui.sqlite_source import SqliteSource, StoreMissing
from flux.ui.summary import summarize
from flux.ui.timeline import build_timeline
from flux.ui.values import error_text, pretty

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TIMEOUT = {"type": "ExecutionTimeoutError", "message": "too slow", "kind": "timeout"}
OOPS = {"type": "RuntimeError", "module": "builtins", "message": "oops", "kind": "code"}


class History:
    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, type_: str, call: str, name: str, at: float, value: Any = None) -> History:
        self.steps.append(
            Step(len(self.steps) + 1, type_, call, name, T0 + dt.timedelta(seconds=at), value)
        )
        return self


def run_row(state: str = "COMPLETED", interrupted: bool = False, run_id: str = "r1") -> RunRow:
    return RunRow(run_id, "wf", state, T0, T0, interrupted=interrupted)


# ------------------------------------------------------------------ timeline


def test_a_retried_call_shows_its_attempts_waits_and_the_timeout_that_caused_them() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    h.add("TASK_STARTED", "t#0", "t", 1)
    h.add("TASK_RETRY_STARTED", "t#0", "t", 2, {"attempt": 2, "delay": 1.5, "error": TIMEOUT})
    h.add("TASK_RETRY_FAILED", "t#0", "t", 4, {"attempt": 2, "error": OOPS})
    h.add("TASK_RETRY_STARTED", "t#0", "t", 4, {"attempt": 3, "delay": 2, "error": OOPS})
    h.add("TASK_RETRY_COMPLETED", "t#0", "t", 7, {"attempt": 3})
    h.add("TASK_COMPLETED", "t#0", "t", 7, "ok")
    h.add("WORKFLOW_COMPLETED", "r1", "wf", 8, "ok")
    timeline = build_timeline(h.steps)
    [bar] = timeline.bars
    assert (bar.start, bar.end, bar.status, bar.attempts) == (1, 7, "completed", 3)
    waits = [(m.start, m.end) for m in bar.marks if m.kind == "retry-wait"]
    assert waits == [(2, 3.5), (4, 6)]
    assert [m.kind for m in bar.marks].count("timeout") == 1
    assert any("attempt 2 failed: RuntimeError: oops" in m.label for m in bar.marks)
    assert timeline.span == 8
    assert timeline.left(2) == 25.0
    assert timeline.width(2, 6) == 50.0


def test_fallback_and_rollback_are_intervals_and_a_failed_rollback_says_why() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    h.add("TASK_STARTED", "a#0", "a", 0)
    h.add("TASK_FALLBACK_STARTED", "a#0", "a", 1, {"error": TIMEOUT})
    h.add("TASK_FALLBACK_COMPLETED", "a#0", "a", 2)
    h.add("TASK_COMPLETED", "a#0", "a", 2, "fallback")
    h.add("TASK_STARTED", "b#0", "b", 2)
    h.add("TASK_ROLLBACK_STARTED", "b#0", "b", 3, {"error": OOPS})
    h.add("TASK_ROLLBACK_FAILED", "b#0", "b", 4, {"error": {"type": "OSError", "message": "x"}})
    h.add("TASK_FAILED", "b#0", "b", 4, OOPS)
    a, b = build_timeline(h.steps).bars
    assert {(m.kind, m.start, m.end) for m in a.marks} == {("timeout", 1, None), ("fallback", 1, 2)}
    [rollback] = b.marks
    assert (rollback.kind, rollback.start, rollback.end, b.status) == ("rollback", 3, 4, "failed")
    assert "the rollback failed: OSError: x" in rollback.label


def test_an_open_call_runs_to_now_and_groups_aggregate_every_call_of_a_task() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    for i in range(3):
        h.add("TASK_STARTED", f"m#{i}", "m", 1)
    h.add("TASK_COMPLETED", "m#0", "m", 2)
    h.add("TASK_FAILED", "m#1", "m", 4, OOPS)
    timeline = build_timeline(h.steps, now=T0 + dt.timedelta(seconds=10))
    assert [b.end for b in timeline.bars] == [2, 4, None]
    assert timeline.span == 10
    [group] = timeline.groups
    assert (group.calls, group.statuses, group.longest) == (
        3,
        {"completed": 1, "failed": 1, "running": 1},
        3,
    )


def test_history_from_another_version_does_not_break_the_timeline() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    h.add("TASK_STARTED", "a#0", "a", 0)
    h.add("TASK_RETRY_STARTED", "a#0", "a", 1, "not a dict")
    h.add("TASK_SOMETHING_NEW", "a#0", "a", 1, {"x": 1})
    h.add("TASK_RETRY_STARTED", "a#0", "a", 1, {"attempt": "two", "delay": None})
    [bar] = build_timeline(h.steps).bars
    assert bar.status == "running"
    assert bar.attempts == 2


# --------------------------------------------------------------------- graph


def test_parallel_calls_share_a_layer_and_a_map_is_one_node() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    h.add("TASK_STARTED", "first#0", "first", 0).add("TASK_COMPLETED", "first#0", "first", 1)
    for name in ("p1", "p2"):
        h.add("TASK_STARTED", f"{name}#0", name, 1)
    h.add("TASK_COMPLETED", "p2#0", "p2", 2).add("TASK_COMPLETED", "p1#0", "p1", 2)
    for i in range(500):
        h.add("TASK_STARTED", f"item#{i}", "item", 3)
    for i in range(500):
        h.add("TASK_FAILED" if i == 7 else "TASK_COMPLETED", f"item#{i}", "item", 4, OOPS)
    h.add("WORKFLOW_FAILED", "r1", "wf", 5, OOPS)
    graph = build_graph(h.steps, "FAILED")
    labels = [[(n.label, n.calls) for n in layer.nodes] for layer in graph.layers]
    assert labels == [
        [("start", 0)],
        [("first", 1)],
        [("p1", 1), ("p2", 1)],
        [("item", 500)],
        [("failed", 0)],
    ]
    ids = {n.label: n.id for layer in graph.layers for n in layer.nodes}
    assert set(graph.edges) == {
        ("start", ids["first"]),
        (ids["first"], ids["p1"]),
        (ids["first"], ids["p2"]),
        (ids["p1"], ids["item"]),
        (ids["p2"], ids["item"]),
        (ids["item"], "end"),
    }
    assert graph.node(ids["item"]).status == "failed"
    assert graph.layers[2].fan_out and not graph.layers[1].fan_out


def test_a_paused_run_ends_at_its_pause_and_many_different_tasks_fold_into_one_node() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    for i in range(graph_module.MAX_NODES_PER_LAYER + 5):
        h.add("TASK_STARTED", f"t{i}#0", f"t{i}", 1)
    for i in range(graph_module.MAX_NODES_PER_LAYER + 5):
        h.add("TASK_COMPLETED", f"t{i}#0", f"t{i}", 2)
    h.add("TASK_PAUSED", "pause#0", "approve", 3, {"output": None})
    h.add("WORKFLOW_PAUSED", "r1", "wf", 3, {"pause": "approve"})
    graph = build_graph(h.steps, "PAUSED")
    wide = graph.layers[1]
    assert len(wide.nodes) == graph_module.MAX_NODES_PER_LAYER + 1
    assert (wide.nodes[-1].label, wide.nodes[-1].calls) == ("other tasks", 5)
    assert graph.layers[2].nodes[0].status == "paused"
    assert graph.layers[-1].nodes[0].label == "paused"
    assert graph.width >= len(wide.nodes) * graph_module.NODE_WIDTH


def test_a_long_sequential_run_keeps_its_first_layers_and_its_end() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    for i in range(graph_module.MAX_LAYERS + 40):
        h.add("TASK_STARTED", f"s#{i}", "s", i).add("TASK_COMPLETED", f"s#{i}", "s", i)
    h.add("WORKFLOW_COMPLETED", "r1", "wf", 999)
    graph = build_graph(h.steps, "COMPLETED")
    assert len(graph.layers) == graph_module.MAX_LAYERS + 1
    assert graph.hidden_layers == 41  # 190 task layers + start + end, 151 drawn
    assert graph.layers[-1].nodes[0].id == "end"


# ------------------------------------------------------------------- summary


def test_a_paused_run_gives_the_exact_resume_command_quoted_for_a_shell() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0, {"n": 1})
    h.add("TASK_PAUSED", "pause#0", "it's; rm -rf", 1, {"output": {"amount": 3}})
    h.add("WORKFLOW_PAUSED", "r1", "wf", 1, {"pause": "it's; rm -rf"})
    summary = summarize(run_row("PAUSED"), h.steps)
    assert summary.pause is not None
    assert summary.pause.output == {"amount": 3}
    assert summary.pause.command == ("flux resume r1 --pause 'it'\"'\"'s; rm -rf' --input JSON")
    assert summary.input == {"n": 1}
    assert summary.continue_command is None


def test_a_failed_run_shows_the_innermost_error_and_the_attempts() -> None:
    error = {"type": "ExecutionError", "message": "wrapped", "cause": {**OOPS, "attempts": 3}}
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    h.add("TASK_STARTED", "t#0", "t", 0)
    h.add("TASK_RETRY_STARTED", "t#0", "t", 1, {"attempt": 2, "delay": 0, "error": OOPS})
    h.add("TASK_FAILED", "t#0", "t", 2, error)
    h.add("WORKFLOW_FAILED", "r1", "wf", 2, error)
    summary = summarize(run_row("FAILED"), h.steps)
    assert summary.error_text == "RuntimeError: oops (after 3 attempts)"
    assert (summary.calls, summary.attempts, summary.completed) == (1, 2, False)
    assert summary.duration == 2


def test_an_interrupted_run_gives_the_command_that_continues_it() -> None:
    steps = History().add("WORKFLOW_STARTED", "r1", "wf", 0).steps
    summary = summarize(run_row("RUNNING", interrupted=True), steps)
    assert summary.continue_command == "flux resume r1"


def test_values_are_shown_as_stored_json_never_decoded() -> None:
    tagged = {"$flux": "datetime", "value": "2026-01-01T00:00:00"}
    assert '"$flux": "datetime"' in pretty(tagged)
    assert pretty("x" * 50, limit=10).endswith("(42 more characters)")
    assert error_text("not an error") == '"not an error"'


# ---------------------------------------------------------- read-only source


def _store_with_a_run(path: Path) -> None:
    with Store(path) as store:
        store.create_run("r1", "wf", {"module": "m", "file": None, "attr": "wf"})
        events = [
            ExecutionEvent(EventType.WORKFLOW_STARTED, "r1", "wf", T0, {"a": "<b>"}, 1),
            ExecutionEvent(EventType.TASK_STARTED, "t#0", "t", T0, {"args": [1]}, 2),
        ]
        store.append("r1", events)


def test_the_source_reads_a_store_and_can_never_write_to_it(tmp_path: Path) -> None:
    path = tmp_path / "flux.db"
    _store_with_a_run(path)
    source = SqliteSource(path)
    page = source.list_runs(RunQuery(workflow="wf"))
    assert [r.id for r in page.runs] == ["r1"] and page.total == 1
    assert source.list_runs(RunQuery(state="FAILED")).total == 0
    steps = source.steps("r1")
    # Only the values the views read are loaded: not every task's arguments.
    assert [(s.type, s.value) for s in steps] == [
        ("WORKFLOW_STARTED", {"a": "<b>"}),
        ("TASK_STARTED", None),
    ]
    assert [e.value for e in source.events("r1", after=1, limit=10)] == [{"args": [1]}]
    with source._read() as db, pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.execute("DELETE FROM runs")


def test_a_missing_store_is_reported_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "flux.db"
    with pytest.raises(StoreMissing):
        SqliteSource(path).list_runs(RunQuery())
    assert not path.parent.exists()
