"""A reconcile pass costs what is in play, not the number of open calls.

A run with 100k calls waiting must not make every pass decode and evaluate all
of them: these tests count the calls of ``next_move`` and the events decoded.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from flux.k8s.archive import OpenCalls
from flux.k8s.calls import next_move
from flux.k8s.protocol import Outcome, TaskResult
from flux.k8s.reconcile import Observed, Plan, plan_run
from flux.k8s.reconcile import tasks as task_pass
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, batched, pod, run, started, workflow

MANY = 100_000
CAP = CONFIG.max_task_pods_per_run


@pytest.fixture(scope="module")
def waiting() -> OpenCalls:
    """100k task calls waiting, as the operator caches them from archived chunks."""
    return OpenCalls().apply(
        [WF_STARTED, *({**started(f"say#{i}"), "id": 2 + i} for i in range(MANY))]
    )


@pytest.fixture(scope="module")
def waiting_map() -> OpenCalls:
    """The items of one task.map(range(100k), batch_size=1000)."""
    return OpenCalls().apply([WF_STARTED, *(batched(i, size=1000) for i in range(MANY))])


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often a pass evaluates a call (next_move) and decodes an open call's event."""
    counts: Counter[str] = Counter()

    def counting_next_move(*args: Any, **kwargs: Any) -> Any:
        counts["next_move"] += 1
        return next_move(*args, **kwargs)

    task_event = OpenCalls.task_event

    def counting_task_event(self: OpenCalls, call_id: str) -> dict[str, Any]:
        counts["decoded"] += 1
        return task_event(self, call_id)

    monkeypatch.setattr(task_pass, "next_move", counting_next_move)
    monkeypatch.setattr(OpenCalls, "task_event", counting_task_event)
    return counts


def _pass(
    open_calls: OpenCalls,
    records: list[dict[str, Any]],
    pods: list[dict[str, Any]] | None = None,
    inline: list[dict[str, Any]] | None = None,
    **status: Any,
) -> Plan:
    """One pass with the inline history ``inline`` layered on the archived calls."""
    calls = open_calls.layer().apply(inline or [])
    body = {"phase": "Running", "tasks": records, "driver": {"starts": 1, "pod": "d"}, **status}
    observed = Observed(
        run(body), workflow(), [*(pods or []), pod("d", "driver", "Running")], NOW, open_calls=calls
    )
    return plan_run(observed, CONFIG)


def _task_pods(plan: Plan) -> list[dict[str, Any]]:
    return [p for p in plan.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]


def _running_pods(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [pod(name, "task", "Running") for name in sorted({r["pod"] for r in records})]


def test_a_pass_over_100k_waiting_calls_evaluates_only_those_it_starts(
    waiting: OpenCalls, counted: Counter[str]
) -> None:
    first = _pass(waiting, [])
    assert len(_task_pods(first)) == CAP
    assert [r["callId"] for r in first.status["tasks"]] == [f"say#{i}" for i in range(CAP)]
    assert counted == {"next_move": CAP, "decoded": CAP}

    # Full: only the records in play are looked at.
    counted.clear()
    records = first.status["tasks"]
    second = _pass(waiting, records, _running_pods(records))
    assert _task_pods(second) == [] and "tasks" not in second.status
    assert counted == {"next_move": CAP, "decoded": CAP}

    # The driver took one outcome: the next call in history order gets its slot.
    counted.clear()
    done = {**records[0], "state": "Completed", "pod": None}
    completed = {"type": "TASK_COMPLETED", "sourceId": "say#0", "name": "say", "value": "x"}
    third = _pass(waiting, [done, *records[1:]], _running_pods(records[1:]), [completed])
    assert [r["callId"] for r in third.status["tasks"]][-1] == f"say#{CAP}"
    assert len(_task_pods(third)) == 1
    assert counted == {"next_move": CAP, "decoded": CAP}


def test_a_pass_over_a_100k_item_map_evaluates_one_pod_s_worth(
    waiting_map: OpenCalls, counted: Counter[str]
) -> None:
    plan = _pass(waiting_map, [])
    (batch,) = _task_pods(plan)
    assert batch["metadata"]["annotations"]["flux.dev/batch-size"] == str(CAP)
    assert counted == {"next_move": CAP, "decoded": CAP}

    counted.clear()
    records = plan.status["tasks"]
    again = _pass(waiting_map, records, _running_pods(records))
    assert _task_pods(again) == [] and counted == {"next_move": CAP, "decoded": CAP}


def test_calls_far_back_in_the_queue_that_end_without_a_pod_end_at_once(
    waiting: OpenCalls, counted: Counter[str]
) -> None:
    first = _pass(waiting, [])
    records = first.status["tasks"]
    counted.clear()
    unmapped = {**started("other#0"), "id": MANY + 2}
    unmapped["value"] = {**unmapped["value"], "secrets": ["NOT_MAPPED"]}
    plan = _pass(
        waiting,
        records,
        _running_pods(records),
        [unmapped],
        cancelRequested=[f"say#{MANY - 1}"],
    )
    new = {r["callId"]: r for r in plan.status["tasks"][CAP:]}
    assert list(new) == [f"say#{MANY - 1}", "other#0"]
    assert new[f"say#{MANY - 1}"]["state"] == "Cancelled"
    assert (
        new["other#0"]["state"] == "Failed" and "NOT_MAPPED" in new["other#0"]["error"]["message"]
    )
    assert _task_pods(plan) == []
    assert counted == {"next_move": CAP + 2, "decoded": CAP + 2}


def test_a_sleep_wakes_the_run_without_a_look_at_the_waiting_calls(
    waiting: OpenCalls, counted: Counter[str]
) -> None:
    first = _pass(waiting, [])
    records = first.status["tasks"]
    counted.clear()
    until = NOW.replace(hour=13)
    nap = {
        "type": "TASK_STARTED",
        "sourceId": "sleep#0",
        "name": "sleep",
        "value": {"until": until.isoformat(), "seconds": 3600},
    }
    plan = _pass(waiting, records, _running_pods(records), [nap])
    assert plan.wake_at == until
    assert counted["decoded"] == CAP


def test_calls_start_in_history_order_whether_retried_or_new() -> None:
    """A due retry later in history waits behind a new call earlier in it."""
    calls = [{**started(f"say#{i}"), "id": 2 + i} for i in range(4)]
    retrying = {
        "callId": "say#2",
        "name": "say",
        "state": "Retrying",
        "step": "attempt",
        "attempts": 1,
        "nextAttemptAt": NOW.isoformat(),
    }
    running = {**retrying, "callId": "say#0", "state": "Running", "pod": "p0"}
    status = {
        "phase": "Running",
        "history": [WF_STARTED, *calls],
        "tasks": [running, retrying],
        "driver": {"starts": 1, "pod": "d"},
    }
    wf = workflow(
        entrypoint="examples.hello:hello",
        parallelism=2,
        secrets={"API_KEY": {"secretName": "api", "key": "token"}},
    )
    pods = [pod("p0", "task", "Running"), pod("d", "driver", "Running")]
    plan = plan_run(Observed(run(status), wf, pods, NOW), CONFIG)
    by_id = {r["callId"]: r for r in plan.status["tasks"]}
    assert len(_task_pods(plan)) == 1 and by_id["say#1"]["state"] == "Running"
    assert by_id["say#2"]["state"] == "Retrying"

    # With say#1 gone, the retry is next.
    done = TaskResult(outcome=Outcome.COMPLETED, value="x")
    status["history"] = [*status["history"], {**calls[1], "type": "TASK_COMPLETED"}]
    status["tasks"] = [running, retrying, {**by_id["say#1"], "state": "Completed", "pod": None}]
    pods.append(pod(by_id["say#1"]["pod"], "task", "Succeeded", done))
    plan = plan_run(Observed(run(status), wf, pods, NOW), CONFIG)
    by_id = {r["callId"]: r for r in plan.status["tasks"]}
    assert by_id["say#2"]["state"] == "Running" and by_id["say#2"]["attempts"] == 2
    assert "say#3" not in by_id
