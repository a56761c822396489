"""The console's view models: summary, timeline and graph built from history rows."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flux.events import EventType, ExecutionEvent
from flux.local.store import Store
from flux.ui import graph as graph_module
from flux.ui.graph import build_graph
from flux.ui.kube_source import event_row, resume_command
from flux.ui.kube_source import run_row as kube_run_row
from flux.ui.memory_run import MemoryRun
from flux.ui.pods import pod_stages
from flux.ui.source import HistoryItem, RunQuery, RunRow
from flux.ui.sqlite_source import SqliteSource, StoreMissing
from flux.ui.summary import summarize
from flux.ui.timeline import build_timeline
from flux.ui.values import error_text, pretty

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TIMEOUT = {"type": "ExecutionTimeoutError", "message": "too slow", "kind": "timeout"}
OOPS = {"type": "RuntimeError", "module": "builtins", "message": "oops", "kind": "code"}


class History:
    def __init__(self) -> None:
        self.steps: list[HistoryItem] = []

    def add(self, type_: str, call: str, name: str, at: float, value: Any = None) -> History:
        self.steps.append(
            HistoryItem(
                len(self.steps) + 1, type_, call, name, T0 + dt.timedelta(seconds=at), value
            )
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
    read = 0

    def counted() -> Iterator[HistoryItem]:
        nonlocal read
        for step in h.steps:
            read += 1
            yield step

    graph = build_graph(counted(), "COMPLETED")
    # start, the first MAX_LAYERS task layers, end
    assert len(graph.layers) == graph_module.MAX_LAYERS + 2
    assert graph.truncated and graph.drawn_calls == graph_module.MAX_LAYERS
    assert graph.layers[-1].nodes[0].id == "end"
    assert graph.layers[-1].nodes[0].status == "completed"
    assert read == 2 + 2 * graph_module.MAX_LAYERS  # it stopped reading there


def test_a_truncated_graph_settles_the_calls_it_drew_from_outcomes_read_apart() -> None:
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0)
    h.add("TASK_STARTED", "slow#0", "slow", 0)  # runs on while the workflow loops
    h.add("TASK_STARTED", "s#0", "s", 0)
    for i in range(graph_module.MAX_LAYERS + 5):
        h.add("TASK_COMPLETED", f"s#{i}", "s", i).add("TASK_STARTED", f"s#{i + 1}", "s", i)
    graph = build_graph(h.steps, "RUNNING")
    assert graph.truncated and graph.pending == ["slow#0"]
    assert graph.node("L1-0").status == "running"
    graph.settle(History().add("TASK_FAILED", "slow#0", "slow", 9).steps)
    assert graph.node("L1-0").status == "failed" and graph.pending == []


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
        first = ExecutionEvent(EventType.WORKFLOW_STARTED, "r1", "wf", T0, {"a": "<b>"}, 1)
        store.create_run("r1", "wf", {"module": "m", "file": None, "attr": "wf"}, first)
        store.append(
            "r1", [ExecutionEvent(EventType.TASK_STARTED, "t#0", "t", T0, {"args": [1]}, 2)]
        )


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


def _rich_history() -> list[ExecutionEvent]:
    """Every kind of call the timeline tells apart, as the engine stores them."""
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0, {"n": 1})
    h.add("TASK_STARTED", "t#0", "t", 1, {"args": []})
    h.add("TASK_RETRY_STARTED", "t#0", "t", 2, {"attempt": 2, "delay": 1, "error": TIMEOUT})
    h.add("TASK_RETRY_COMPLETED", "t#0", "t", 3.5, {"attempt": 2})
    h.add("TASK_COMPLETED", "t#0", "t", 3.5, "ok")
    for i in range(3):
        h.add("TASK_STARTED", f"m#{i}", "m", 4, {"args": [i]})
    h.add("TASK_FALLBACK_STARTED", "m#0", "m", 5, {"error": OOPS})
    h.add("TASK_FALLBACK_COMPLETED", "m#0", "m", 5.25)
    h.add("TASK_COMPLETED", "m#0", "m", 5.25, "fallback")
    h.add("TASK_ROLLBACK_STARTED", "m#1", "m", 6, {"error": {**TIMEOUT, "message": 'a "kind"'}})
    h.add("TASK_ROLLBACK_COMPLETED", "m#1", "m", 6.5)
    h.add("TASK_FAILED", "m#1", "m", 6.5, {"type": "ExecutionError", "cause": TIMEOUT})
    h.add("TASK_COMPLETED", "late#0", "late", 7, {"kind": "timeout"})  # an output, not an error
    h.add("TASK_PAUSED", "pause#0", "approve", 8, {"output": None})
    return [
        ExecutionEvent(EventType(s.type), s.call, s.name, s.time, s.value, s.id) for s in h.steps
    ]


def _store(store: Store, events: list[ExecutionEvent]) -> None:
    """Run r1 of ``events``: registered with its first, the rest appended."""
    store.create_run("r1", "wf", {}, events[0])
    store.append("r1", events[1:])


def test_the_store_sums_task_groups_by_the_same_rules_as_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "flux.db"
    with Store(path) as store:
        _store(store, _rich_history())
    source = SqliteSource(path)
    expected = build_timeline(source.steps("r1")).groups
    actual = source.task_groups("r1")
    assert [g.name for g in actual] == ["t", "m", "late", "approve"]
    for mine, theirs in zip(actual, expected, strict=True):
        assert mine.statuses == theirs.statuses, mine.name
        assert (mine.calls, mine.retried, mine.timeouts, mine.fallbacks, mine.rollbacks) == (
            theirs.calls,
            theirs.retried,
            theirs.timeouts,
            theirs.fallbacks,
            theirs.rollbacks,
        ), mine.name
        assert mine.total == pytest.approx(theirs.total, abs=0.002), mine.name
        assert mine.longest == pytest.approx(theirs.longest, abs=0.002), mine.name
    counts = source.counts("r1")
    # late#0 has no TASK_STARTED: an outcome alone is no started call
    assert (counts.events, counts.calls, counts.pauses, counts.retries) == (16, 4, 1, 1)


def test_a_page_of_calls_holds_every_event_of_those_calls_only(tmp_path: Path) -> None:
    path = tmp_path / "flux.db"
    with Store(path) as store:
        _store(store, _rich_history())
    source = SqliteSource(path)
    page = source.call_steps("r1", offset=1, limit=2)
    assert {s.call for s in page} == {"m#0", "m#1"}
    assert len(page) == 8
    everything = build_timeline(source.steps("r1"))
    counts = source.counts("r1")
    paged = build_timeline(page, origin=counts.first, until=counts.last)
    assert paged.span == everything.span
    assert [(b.call, b.start, b.end, b.kinds) for b in paged.bars] == [
        (b.call, b.start, b.end, b.kinds) for b in everything.bars[1:3]
    ]
    assert [s.type for s in source.summary_steps("r1")] == ["WORKFLOW_STARTED", "TASK_PAUSED"]
    moves = list(source.moves("r1"))
    # Starts, outcomes and the workflow's events: no retries, fallbacks, rollbacks.
    assert len(moves) == 10 and moves[1] == ("TASK_STARTED", "t#0", "t")
    assert [m.call for m in source.outcomes("r1", ["m#1", "t#0", "nope"])] == ["t#0", "m#1"]


# ------------------------------------------------------ kubernetes, in memory


def test_a_run_read_whole_answers_like_the_store(tmp_path: Path) -> None:
    """The Kubernetes source answers from memory by the SQLite source's rules."""
    events = _rich_history()
    path = tmp_path / "flux.db"
    with Store(path) as store:
        _store(store, events)
    sql = SqliteSource(path)
    memory = MemoryRun(sql.events("r1", after=0, limit=1000))
    assert memory.counts() == sql.counts("r1")
    assert memory.summary_steps() == sql.summary_steps("r1")
    assert list(memory.moves()) == list(sql.moves("r1"))
    assert memory.outcomes(["m#1", "t#0"]) == sql.outcomes("r1", ["m#1", "t#0"])
    # The store leaves out values no view reads (a task's arguments): compare the rest.
    assert [s[:5] for s in memory.call_steps(1, 2)] == [s[:5] for s in sql.call_steps("r1", 1, 2)]
    assert memory.page(3, 4) == sql.events("r1", 3, 4)
    assert memory.call_events("m#0") == sql.call_events("r1", "m#0")
    theirs = {g.name: (g.calls, g.statuses, g.retried, g.timeouts) for g in sql.task_groups("r1")}
    mine = {g.name: (g.calls, g.statuses, g.retried, g.timeouts) for g in memory.task_groups()}
    assert mine == theirs


def test_a_workflow_run_becomes_a_console_run_with_its_resume_command() -> None:
    body = {
        "metadata": {
            "name": "nightly.1",
            "namespace": "etl",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"workflowRef": {"name": "nightly"}},
        "status": {"phase": "Paused", "startTime": "2026-01-01T00:00:01Z"},
    }
    row = kube_run_row(body)
    assert (row.id, row.workflow, row.state) == ("etl.nightly.1", "nightly", "PAUSED")
    assert row.updated == T0 + dt.timedelta(seconds=1)
    assert resume_command(row, "approve") == (
        "kubectl patch fxrun nightly.1 -n etl --subresource=status --type=merge "
        """-p '{"status":{"resume":{"input":JSON}}}'"""
    )
    event = event_row(
        {
            "id": 3,
            "type": "TASK_STARTED",
            "sourceId": "t#0",
            "name": "t",
            "time": "2026-01-01T00:00:02.5Z",
            "value": {"args": []},
        }
    )
    assert (event.call, event.time) == ("t#0", T0 + dt.timedelta(seconds=2.5))


def _pod(name: str, call: str | None, **status: Any) -> dict[str, Any]:
    annotations = {"flux.dev/call-id": call} if call else {}
    meta = {"name": name, "creationTimestamp": "2026-01-01T00:00:01Z", "annotations": annotations}
    return {"metadata": meta, "status": status}


def test_pod_stages_say_what_a_call_waits_for() -> None:
    scheduled = {
        "type": "PodScheduled",
        "status": "True",
        "lastTransitionTime": "2026-01-01T00:00:03Z",
    }
    running = {"state": {"running": {"startedAt": "2026-01-01T00:00:06Z"}}}
    stages = pod_stages(
        [
            _pod("queued", "a#0", conditions=[{"type": "PodScheduled", "status": "False"}]),
            _pod(
                "pulling",
                "b#0",
                conditions=[scheduled],
                containerStatuses=[{"state": {"waiting": {}}}],
            ),
            _pod("busy", "c#0", conditions=[scheduled], containerStatuses=[running]),
            _pod("batch", None, conditions=[scheduled]),
        ]
    )
    assert {call: [(s.kind, s.end is None) for s in found] for call, found in stages.items()} == {
        "a#0": [("queued", True)],
        "b#0": [("queued", False), ("starting", True)],
        "c#0": [("queued", False), ("starting", False), ("running", True)],
    }
    h = History().add("WORKFLOW_STARTED", "r1", "wf", 0).add("TASK_STARTED", "c#0", "c", 0.5)
    timeline = build_timeline(h.steps, now=T0 + dt.timedelta(seconds=10), pods=stages)
    [bar] = timeline.bars
    assert [(m.kind, m.start, m.end) for m in bar.marks] == [
        ("pod-queued", 1, 3),
        ("pod-starting", 3, 6),
        ("pod-running", 6, 10),
    ]
    assert timeline.shows_pods and bar.marks[-1].label == "pod busy: running (now)"


def test_a_run_still_going_lasts_until_now() -> None:
    steps = History().add("WORKFLOW_STARTED", "r1", "wf", 1).steps
    later = T0 + dt.timedelta(seconds=31)
    assert summarize(run_row("RUNNING"), steps, now=later).duration == 30
    assert summarize(run_row("RUNNING"), steps).duration == 0  # its last update, T0
