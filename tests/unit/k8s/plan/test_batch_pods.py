"""task.map(batch_size=N) on Kubernetes: calls packed into pods, outcomes per call."""

from __future__ import annotations

from typing import Any

from flux.k8s.config import OperatorConfig
from flux.k8s.protocol import TASK_ENV, BatchResult, Outcome, TaskResult, parse_task_spec
from flux.k8s.reconcile import Observed, plan_run
from support.k8s_bodies import NOW, WF_STARTED, batched, plan, pod, run, started, workflow


def _status(calls: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "phase": "Running",
        "history": [WF_STARTED, *calls],
        "driver": {"starts": 1, "pod": "d"},
        **extra,
    }


def _env(created: dict[str, Any]) -> Any:
    env = created["spec"]["containers"][0]["env"]
    return parse_task_spec(next(e["value"] for e in env if e["name"] == TASK_ENV))


def test_calls_of_one_map_share_pods_n_at_a_time() -> None:
    result = plan(_status([batched(i) for i in range(7)]), [pod("d", "driver", "Running")])
    tasks = [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]
    assert len(tasks) == 3
    specs = [_env(p) for p in tasks]
    assert [[item.call_id for item in s.items] for s in specs] == [
        ["say#0", "say#1", "say#2"],
        ["say#3", "say#4", "say#5"],
        ["say#6"],
    ]
    assert [i.positional for i in specs[0].items] == [[0], [1], [2]]
    assert tasks[0]["metadata"]["annotations"]["flux.dev/batch-size"] == "3"
    pods_of = {r["callId"]: r["pod"] for r in result.status["tasks"]}
    assert pods_of["say#0"] == pods_of["say#2"] == tasks[0]["metadata"]["name"]
    assert pods_of["say#6"] == tasks[2]["metadata"]["name"]


def test_parallelism_counts_a_batch_pod_once() -> None:
    wf = workflow(entrypoint="examples.hello:hello", parallelism=2)
    result = plan(_status([batched(i) for i in range(9)]), [pod("d", "driver", "Running")], wf=wf)
    assert (
        len([p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]) == 2
    )
    assert len(result.status["tasks"]) == 6


def test_each_call_gets_its_own_outcome_and_retry_from_the_batch_result() -> None:
    calls = [batched(i, retry_max_attempts=2) for i in range(3)]
    first = plan(_status(calls), [pod("d", "driver", "Running")])
    records = first.status["tasks"]
    name = records[0]["pod"]
    result = BatchResult(
        items={
            "say#0": TaskResult(outcome=Outcome.COMPLETED, value="zero"),
            "say#1": TaskResult(
                outcome=Outcome.FAILED,
                error={
                    "type": "ValueError",
                    "module": "builtins",
                    "message": "bad 1",
                    "kind": "code",
                },
            ),
            # say#2 missing: the runner died before reporting it.
        }
    )
    finished = pod(name, "task", "Succeeded")
    finished["metadata"]["annotations"] = {"flux.dev/batch-size": "3"}
    finished["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = (
        result.to_message()
    )
    second = plan(_status(calls, tasks=records), [finished, pod("d", "driver", "Running")])
    by_id = {r["callId"]: r for r in second.status["tasks"]}
    assert by_id["say#0"]["state"] == "Completed" and by_id["say#0"]["output"] == "zero"
    assert by_id["say#1"]["state"] == "Retrying"
    assert by_id["say#1"]["lastError"]["message"] == "bad 1"
    assert by_id["say#2"]["state"] == "Retrying"
    assert by_id["say#2"]["lastError"]["type"] == "PodFailed"
    assert name in second.delete

    # When due, the two retries share a new pod, as their second attempts.
    later = NOW.replace(minute=5)
    third = plan(
        _status(calls, tasks=second.status["tasks"]), [pod("d", "driver", "Running")], now=later
    )
    (retry_pod,) = [p for p in third.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]
    spec = _env(retry_pod)
    assert [(i.call_id, i.attempt) for i in spec.items] == [("say#1", 2), ("say#2", 2)]


def test_a_batch_pod_gets_a_deadline_for_all_its_items() -> None:
    result = plan(
        _status([batched(i, timeout=10.0) for i in range(3)]), [pod("d", "driver", "Running")]
    )
    (task,) = [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]
    assert task["spec"]["activeDeadlineSeconds"] == 3 * 10 + 30
    assert _env(task).timeout == 10.0


def _capped(status: dict[str, Any], cap: int, pods: list[dict[str, Any]] | None = None) -> Any:
    config = OperatorConfig(default_image="flux-runtime:test", max_task_pods_per_run=cap)
    observed = Observed(
        run(status), workflow(), [*(pods or []), pod("d", "driver", "Running")], NOW
    )
    return plan_run(observed, config)


def _batch_sizes(result: Any) -> list[int | None]:
    """The items of each task pod started: None for a pod of one call."""
    tasks = [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]
    return [len(spec.items) if hasattr(spec, "items") else None for spec in map(_env, tasks)]


def _taken(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outcome events a driver writes for ``calls``: they are no longer open."""
    return [{**c, "type": "TASK_COMPLETED", "value": "x"} for c in calls]


def test_the_operator_cap_bounds_the_records_of_batch_items_too() -> None:
    result = _capped(_status([batched(i, size=4) for i in range(9)]), cap=5)
    # The one item the cap has room for waits for a full batch rather than taking a pod.
    assert _batch_sizes(result) == [4]
    assert len(result.status["tasks"]) == 4


def test_a_map_starts_full_batches_only_and_its_last_items_together() -> None:
    calls = [batched(i, size=4) for i in range(10)]
    first = _capped(_status(calls), cap=6)
    assert _batch_sizes(first) == [4]  # not [4, 2]
    records = first.status["tasks"]
    running = [pod(records[0]["pod"], "task", "Running")]
    assert _batch_sizes(_capped(_status(calls, tasks=records), cap=6, pods=running)) == []

    # The driver took the first four outcomes: the next four start, and the last two
    # with them, being all the map has left.
    done = [{**r, "state": "Completed", "pod": None} for r in records]
    second = _capped(_status([*calls, *_taken(calls[:4])], tasks=done), cap=6)
    assert _batch_sizes(second) == [4, 2]
    assert [r["callId"] for r in second.status["tasks"]][-2:] == ["say#8", "say#9"]


def test_a_batch_larger_than_the_cap_takes_the_cap_once_nothing_is_in_play() -> None:
    calls = [batched(i, size=10) for i in range(7)]
    first = _capped(_status(calls), cap=3)
    assert _batch_sizes(first) == [3]
    records = first.status["tasks"]
    # Two outcomes taken, one item still running: no room for three, so it waits.
    partly = [{**r, "state": "Completed", "pod": None} for r in records[:2]] + records[2:]
    running = [pod(records[2]["pod"], "task", "Running")]
    waiting = _capped(_status([*calls, *_taken(calls[:2])], tasks=partly), cap=3, pods=running)
    assert _batch_sizes(waiting) == []
    # Nothing in play any more: the next three start, and then the last one.
    done = [{**r, "state": "Completed", "pod": None} for r in records]
    second = _capped(_status([*calls, *_taken(calls[:3])], tasks=done), cap=3)
    assert _batch_sizes(second) == [3]
    done = [{**r, "state": "Completed", "pod": None} for r in second.status["tasks"]]
    assert _batch_sizes(_capped(_status([*calls, *_taken(calls[:6])], tasks=done), cap=3)) == [1]


def test_calls_behind_a_map_waiting_for_room_wait_too() -> None:
    before = {**started("first#0"), "id": 2}
    after = {**started("last#0"), "id": 20}
    calls = [before, *(batched(i, size=4) for i in range(6)), after]
    result = _capped(_status(calls), cap=6)
    # first#0 and four items start; the map's last two need room for two, and last#0
    # comes after them.
    assert _batch_sizes(result) == [None, 4]
    assert [r["callId"] for r in result.status["tasks"]] == [
        "first#0",
        *(f"say#{i}" for i in range(4)),
    ]
