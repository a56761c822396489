"""The console's pages over a store: escaping, headers, filters, paging, errors."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flux.events import EventType, ExecutionEvent, ExecutionState
from flux.local.store import Store
from flux.ui.app import CSP, EVENTS_PER_PAGE, create_app
from flux.ui.pods import PodStage
from flux.ui.sqlite_source import SqliteSource

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
HOSTILE = "<script>alert('x')</script>"
LONG_CALLS = 150  # more than a page of bars (100) and of events (100)
LONG_EVENTS = 1 + 2 * LONG_CALLS


def _event(i: int, type_: EventType, call: str, name: str, value: object = None) -> ExecutionEvent:
    return ExecutionEvent(type_, call, name, T0 + dt.timedelta(seconds=i), value, i)


def _write_runs(path: Path) -> None:
    with Store(path) as store:
        # A run whose every user-supplied value tries to be markup.
        store.create_run(
            "xss",
            HOSTILE,
            {"module": HOSTILE, "file": None, "attr": "wf"},
            _event(1, EventType.WORKFLOW_STARTED, "xss", HOSTILE, {"in": HOSTILE}),
        )
        store.append(
            "xss",
            [
                _event(2, EventType.TASK_STARTED, f"{HOSTILE}#0", HOSTILE, {"args": [HOSTILE]}),
                _event(3, EventType.TASK_COMPLETED, f"{HOSTILE}#0", HOSTILE, HOSTILE),
                _event(4, EventType.WORKFLOW_COMPLETED, "xss", HOSTILE, HOSTILE),
            ],
            ExecutionState.COMPLETED,
        )
        first = _event(1, EventType.WORKFLOW_STARTED, "long", "long_history")
        store.create_run("long", "long_history", {"module": "m", "file": None, "attr": "wf"}, first)
        events = []
        for i in range(2, 2 + 2 * LONG_CALLS, 2):
            events.append(_event(i, EventType.TASK_STARTED, f"t#{i}", "t", {"args": [i]}))
            events.append(_event(i + 1, EventType.TASK_COMPLETED, f"t#{i}", "t", i))
        store.append("long", events)
    # Created two days ago, for the time filter.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET created = ? WHERE id = 'long'", (T0.isoformat(),))


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    path = tmp_path / "flux.db"
    _write_runs(path)
    return TestClient(create_app(SqliteSource(path)))


def _pages(client: TestClient) -> list[str]:
    return [
        "/runs",
        "/runs/xss",
        "/runs/xss/events",
        f"/runs/xss/calls/{HOSTILE}%230",
        "/workflows",
        "/runs?fragment=rows",
    ]


def test_values_from_users_are_shown_as_text_on_every_page(client: TestClient) -> None:
    for url in _pages(client):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "<script>alert" not in response.text, url
    run_page = client.get("/runs/xss").text
    # The output is there, as text.
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in run_page


def test_every_page_forbids_anything_from_elsewhere(client: TestClient) -> None:
    for url in [*_pages(client), "/static/console.css", "/static/live.js", "/runs/nope"]:
        response = client.get(url)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "http" not in CSP and "*" not in CSP and "unsafe" not in CSP
    html = client.get("/runs/xss").text
    for link in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert link.startswith(("/", "?", "#")) and not link.startswith("//"), link


def test_runs_filter_by_workflow_and_state_and_reject_bad_filters_in_one_line(
    client: TestClient,
) -> None:
    assert "1 run match" in client.get("/runs?workflow=long_history").text
    only_running = client.get("/runs?state=CREATED").text
    assert "/runs/long" in only_running and "/runs/xss" not in only_running
    recent = client.get("/runs?since=24h").text
    assert "1 run match" in recent and "/runs/xss" in recent and "/runs/long" not in recent
    for url, message in [
        ("/runs?state=DONE", "state must be one of"),
        ("/runs?since=2y", "since must be one of"),
        ("/runs?page=x", "page must be a whole number"),
        ("/runs/long/events?after=-1", "after must be at least 0"),
    ]:
        response = client.get(url)
        assert response.status_code == 400
        assert message in response.text


def test_history_is_paged_by_event_id(client: TestClient) -> None:
    first = client.get("/runs/long/events").text
    assert f"{LONG_EVENTS} events; showing 1 to {EVENTS_PER_PAGE}" in first
    assert f'href="/runs/long/events?after={EVENTS_PER_PAGE}"' in first
    last = client.get(f"/runs/long/events?after={LONG_EVENTS - 1}").text
    assert f"showing {LONG_EVENTS} to {LONG_EVENTS}" in last
    assert 'id="next-events"' not in last


def test_the_timeline_pages_its_calls_and_sums_all_of_them(client: TestClient) -> None:
    first = client.get("/runs/long").text
    assert first.count('<tr class="call"') == 100
    assert f"calls 1 to 100 of {LONG_CALLS}" in first
    assert f"<td>t</td><td>{LONG_CALLS}</td>" in first  # the per-task row counts every call
    second = client.get("/runs/long?calls=2").text
    assert second.count('<tr class="call"') == LONG_CALLS - 100
    assert 'data-call="t#2"' in first and 'data-call="t#2"' not in second
    assert f"calls 101 to {LONG_CALLS} of {LONG_CALLS}" in second


def test_unknown_runs_and_calls_are_404_pages(client: TestClient) -> None:
    response = client.get("/runs/nope")
    assert response.status_code == 404 and "no run with id" in response.text
    assert client.get("/runs/xss/calls/ghost%230").status_code == 404


def test_an_unfinished_run_refreshes_itself_and_a_finished_one_does_not(
    client: TestClient,
) -> None:
    assert "data-live-url" in client.get("/runs/long").text
    assert "data-live-url" not in client.get("/runs/xss").text
    fragment = client.get("/runs/long?fragment=main").text
    assert "<html" not in fragment and "Timeline" in fragment


def test_a_missing_store_is_a_page_saying_so_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "flux.db"
    response = TestClient(create_app(SqliteSource(path))).get("/runs")
    assert response.status_code == 200
    assert "No runs yet" in response.text and str(path) in response.text
    assert not path.parent.exists()


class PodsAndLogs(SqliteSource):
    """A source with what only Kubernetes has: pods and their logs."""

    def pod_stages(self, run_id: str) -> dict[str, list[PodStage]]:
        return {f"{HOSTILE}#0": [PodStage("queued", T0, T0 + dt.timedelta(seconds=2), HOSTILE)]}

    def call_logs(self, run_id: str, call_id: str) -> str | None:
        return f"log of {call_id}: {HOSTILE}"


def test_pod_stages_and_logs_are_shown_as_text(tmp_path: Path) -> None:
    path = tmp_path / "flux.db"
    _write_runs(path)
    client = TestClient(create_app(PodsAndLogs(path)))
    run = client.get("/runs/xss").text
    assert 'class="mark k-pod-queued"' in run and "pod queued" in run
    record = client.get(f"/runs/xss/calls/{HOSTILE}%230").text
    assert 'id="call-logs"' in record
    assert "<script>alert" not in run + record
    assert "log of &lt;script&gt;" in record
    plain = TestClient(create_app(SqliteSource(path))).get(f"/runs/xss/calls/{HOSTILE}%230").text
    assert 'id="call-logs"' not in plain and "pod queued" not in plain
