"""The operator's decisions, driven directly with observed state (no cluster)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from flux.k8s.config import OperatorConfig
from flux.k8s.pods import DEADLINE_SLACK
from flux.k8s.protocol import TASK_ENV, Outcome, TaskResult, TaskSpec
from flux.k8s.reconcile import Observed, plan_run
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, plan, pod, run, started, workflow


def test_new_run_starts_a_driver_pod_and_is_pending() -> None:
    result = plan()
    assert result.status["phase"] == "Pending"
    (driver,) = result.create
    assert driver["metadata"]["labels"]["flux.dev/role"] == "driver"
    env = {e["name"]: e.get("value") for e in driver["spec"]["containers"][0]["env"]}
    assert env["FLUX_WORKFLOW"] == "examples.hello:hello"
    assert driver["spec"]["serviceAccountName"] == "flux-driver"
    assert result.status["driver"]["starts"] == 1
    assert result.events == []  # pending is no news: no Event, one write less per run


def test_missing_workflow_fails_with_a_clear_condition_and_event() -> None:
    result = plan_run(Observed(run(), None, [], NOW), CONFIG)
    assert result.status["phase"] == "Failed"
    (condition,) = result.status["conditions"]
    assert condition["reason"] == "WorkflowNotFound"
    assert "'wf' not found in namespace 'ns'" in condition["message"]
    assert result.events[0][:2] == ("Warning", "WorkflowNotFound")
    assert not result.create


def test_invalid_workflow_fails_the_run() -> None:
    result = plan(wf=workflow("False", "spec.source line 3: syntax error: invalid syntax"))
    assert result.status["phase"] == "Failed"
    assert "line 3" in result.status["error"]["message"]
    assert result.status["conditions"][0]["reason"] == "WorkflowInvalid"


def test_a_recorded_task_call_becomes_a_locked_down_task_pod() -> None:
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0")],
        "driver": {"starts": 1, "pod": "d"},
    }
    result = plan(status, [pod("d", "driver", "Running")])
    (task_pod,) = result.create
    spec = task_pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    container = spec["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env[TASK_ENV]["value"])["callId"] == "say#0"
    assert env["FLUX_SECRET_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "api",
        "key": "token",
    }
    (record,) = result.status["tasks"]
    assert record["state"] == "Running" and record["pod"] == task_pod["metadata"]["name"]


def _running(call_policy: dict[str, Any] | None = None, **record: Any) -> dict[str, Any]:
    base = {
        "callId": "say#0",
        "name": "say",
        "state": "Running",
        "step": "attempt",
        "attempts": 1,
        "pod": "p1",
    }
    return {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0", **(call_policy or {}))],
        "tasks": [{**base, **record}],
        "driver": {"starts": 1, "pod": "d"},
    }


def test_a_succeeded_pod_records_the_output_and_is_removed() -> None:
    done = TaskResult(outcome=Outcome.COMPLETED, value="Hello, World")
    result = plan(_running(), [pod("p1", "task", "Succeeded", done), pod("d", "driver", "Running")])
    (record,) = result.status["tasks"]
    assert record["state"] == "Completed" and record["output"] == "Hello, World"
    assert "p1" in result.delete


def _exited(result: TaskResult, exit_code: int) -> dict[str, Any]:
    """A task pod whose container has exited while the kubelet still reports the pod
    Running (it reports the terminal phase after stopping the sandbox)."""
    exited = pod("p1", "task", "Running")
    terminated = {"exitCode": exit_code, "message": result.to_message()}
    exited["status"]["containerStatuses"] = [{"state": {"terminated": terminated}}]
    return exited


def test_a_task_container_that_exited_0_settles_its_step_before_the_pod_phase_does() -> None:
    done = TaskResult(outcome=Outcome.COMPLETED, value="Hello, World")
    result = plan(_running(), [_exited(done, 0), pod("d", "driver", "Running")])
    (record,) = result.status["tasks"]
    assert record["state"] == "Completed" and record["output"] == "Hello, World"
    assert "p1" in result.delete


def test_a_task_container_that_exited_non_zero_waits_for_the_pod_phase() -> None:
    failed = TaskResult(outcome=Outcome.FAILED, error={"type": "ValueError", "message": "no"})
    result = plan(_running(), [_exited(failed, 1), pod("d", "driver", "Running")])
    assert "p1" not in result.delete
    assert all(
        r["state"] == "Running" for r in result.status.get("tasks") or [_running()["tasks"][0]]
    )


def test_an_outcome_the_driver_has_not_seen_wakes_a_driver() -> None:
    done = TaskResult(outcome=Outcome.COMPLETED, value="x")
    status = _running()
    status["driver"] = {"starts": 1, "pod": None}
    result = plan(status, [pod("p1", "task", "Succeeded", done)])
    assert [p["metadata"]["labels"]["flux.dev/role"] for p in result.create] == ["driver"]


def test_a_failed_attempt_with_retries_waits_without_a_pod() -> None:
    failed = TaskResult(outcome=Outcome.FAILED, error={"type": "ValueError", "message": "boom"})
    result = plan(
        _running({"retry_max_attempts": 2}),
        [pod("p1", "task", "Failed", failed), pod("d", "driver", "Running")],
    )
    (record,) = result.status["tasks"]
    assert record["state"] == "Retrying"
    assert record["nextAttemptAt"] == (NOW + dt.timedelta(seconds=1)).isoformat()
    assert record["lastError"]["type"] == "ValueError"
    assert result.wake_at == NOW + dt.timedelta(seconds=1)
    assert not result.create and "p1" in result.delete


def test_a_due_retry_starts_the_next_attempt() -> None:
    status = _running(
        {"retry_max_attempts": 2}, state="Retrying", pod=None, nextAttemptAt=NOW.isoformat()
    )
    result = plan(status, [pod("d", "driver", "Running")], now=NOW + dt.timedelta(seconds=1))
    (task_pod,) = result.create
    assert task_pod["metadata"]["annotations"]["flux.dev/attempt"] == "2"
    assert result.status["tasks"][0]["attempts"] == 2


def test_exhausted_retries_run_the_fallback_with_a_retry_error() -> None:
    failed = TaskResult(outcome=Outcome.FAILED, error={"type": "ValueError", "message": "boom"})
    status = _running({"retry_max_attempts": 1, "has_fallback": True}, attempts=2)
    result = plan(status, [pod("p1", "task", "Failed", failed), pod("d", "driver", "Running")])
    (task_pod,) = result.create
    assert task_pod["metadata"]["annotations"]["flux.dev/step"] == "fallback"
    record = result.status["tasks"][0]
    assert record["state"] == "FallingBack"
    assert record["triggerError"]["type"] == "RetryError"


@pytest.mark.parametrize("has_fallback", [False, True])
def test_a_deadline_kill_is_a_timeout(has_fallback: bool) -> None:
    status = _running({"timeout": 2.0, "has_fallback": has_fallback})
    killed = pod("p1", "task", "Failed", reason="DeadlineExceeded")
    result = plan(status, [killed, pod("d", "driver", "Running")])
    record = result.status["tasks"][0]
    if has_fallback:
        assert record["triggerError"]["type"] == "ExecutionTimeoutError"
        # The attempt's timeout is not the fallback's.
        (fallback,) = [
            p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"
        ]
        assert _task_spec(fallback).timeout == 0
        assert "activeDeadlineSeconds" not in fallback["spec"]
    else:
        assert record["state"] == "Failed"
        assert record["error"]["cause"]["type"] == "ExecutionTimeoutError"


def test_a_task_pod_gets_the_timeout_and_a_backstop_deadline() -> None:
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0", timeout=2.5)],
        "driver": {"starts": 1, "pod": "d"},
    }
    result = plan(status, [pod("d", "driver", "Running")])
    (task,) = result.create
    # The runner counts the timeout from the body's start; Kubernetes counts
    # from the pod's, start-up included, so its deadline only stops a stuck pod.
    assert task["spec"]["activeDeadlineSeconds"] == 3 + 30
    assert _task_spec(task).timeout == 2.5


def test_a_paused_run_gets_a_driver_only_when_resumed() -> None:
    status = {"phase": "Paused", "history": [WF_STARTED], "driver": {"starts": 1, "pod": None}}
    assert not plan(status).create
    result = plan({**status, "resume": {"input": {"ok": True}}})
    assert [p["metadata"]["labels"]["flux.dev/role"] for p in result.create] == ["driver"]


def test_a_finished_run_removes_its_pods_and_reports_success() -> None:
    result = plan(
        {"phase": "Succeeded", "history": [WF_STARTED]}, [pod("d", "driver", "Succeeded")]
    )
    assert result.delete == ["d"]
    assert result.status["conditions"][0]["status"] == "True"
    assert result.events == [("Normal", "Succeeded", "the workflow completed")]


def test_invalid_input_is_reported_as_such() -> None:
    status = {
        "phase": "Failed",
        "history": [WF_STARTED],
        "error": {"type": "WorkflowInputError", "message": "input: not a string"},
    }
    condition = plan(status).status["conditions"][0]
    assert condition["reason"] == "InvalidInput"
    assert condition["message"] == "input: not a string"


def test_parallelism_caps_the_task_pods_of_a_run() -> None:
    calls = [{**started(f"say#{i}"), "id": 2 + i} for i in range(5)]
    status = {
        "phase": "Running",
        "history": [WF_STARTED, *calls],
        "driver": {"starts": 1, "pod": "d"},
    }
    wf = workflow(
        entrypoint="examples.hello:hello",
        parallelism=2,
        secrets={"API_KEY": {"secretName": "api", "key": "token"}},
    )
    first = plan(status, [pod("d", "driver", "Running")], wf=wf)
    assert len(first.create) == 2
    assert [r["callId"] for r in first.status["tasks"]] == ["say#0", "say#1"]
    # One finishes: exactly one more starts, in history order.
    done = TaskResult(outcome=Outcome.COMPLETED, value="x")
    records = first.status["tasks"]
    pods = [
        pod(records[0]["pod"], "task", "Succeeded", done),
        pod(records[1]["pod"], "task", "Running"),
        pod("d", "driver", "Running"),
    ]
    second = plan({**status, "tasks": records}, pods, wf=wf)
    assert len(second.create) == 1
    assert second.status["tasks"][-1]["callId"] == "say#2"


def test_a_secret_the_workflow_does_not_map_fails_the_call_without_a_pod() -> None:
    status = {
        "phase": "Running",
        "history": [WF_STARTED, started("say#0")],
        "driver": {"starts": 1, "pod": "d"},
    }
    result = plan(
        status, [pod("d", "driver", "Running")], wf=workflow(entrypoint="examples.hello:hello")
    )
    assert not result.create
    (record,) = result.status["tasks"]
    assert record["state"] == "Failed"
    assert "API_KEY" in record["error"]["message"] and "spec.secrets" in record["error"]["message"]


def test_a_missing_secret_fails_fast_naming_secret_and_key() -> None:
    status = _running()
    waiting = pod("p1", "task", "Pending")
    waiting["status"]["containerStatuses"] = [
        {
            "state": {
                "waiting": {
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "api" not found',
                }
            }
        }
    ]
    result = plan(status, [waiting, pod("d", "driver", "Running")])
    (record,) = result.status["tasks"]
    assert record["state"] == "Failed" and "p1" in result.delete
    message = record["error"]["message"]
    assert "API_KEY" in message and "'api'" in message and "'token'" in message


def test_policy_steps_are_kept_for_the_history() -> None:
    failed = TaskResult(outcome=Outcome.FAILED, error={"type": "ValueError", "message": "boom"})
    status = _running({"retry_max_attempts": 1, "has_fallback": True})
    first = plan(status, [pod("p1", "task", "Failed", failed), pod("d", "driver", "Running")])
    steps = [s["type"] for s in first.status["tasks"][0]["steps"]]
    assert steps == ["TASK_RETRY_STARTED"]


def test_an_unschedulable_pod_fails_its_attempt_after_the_pending_timeout() -> None:
    stuck = pod("p1", "task", "Pending")
    stuck["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 Insufficient memory.",
            }
        ],
    }
    status = _running()
    early = plan(status, [stuck, pod("d", "driver", "Running")], now=NOW + dt.timedelta(seconds=10))
    assert "tasks" not in early.status
    late = plan(
        status,
        [stuck, pod("d", "driver", "Running")],
        now=NOW + dt.timedelta(seconds=CONFIG.pending_timeout + 1),
    )
    record = late.status["tasks"][0]
    assert record["state"] == "Failed"
    assert record["lastError"]["kind"] == "unstartable"
    assert "Insufficient memory" in record["lastError"]["message"]


def test_a_cancelled_call_stops_its_pod_and_runs_its_rollback() -> None:
    status = {**_running({"has_rollback": True}), "cancelRequested": ["say#0"]}
    result = plan(status, [pod("p1", "task", "Running"), pod("d", "driver", "Running")])
    assert "p1" in result.delete
    (rollback,) = result.create
    assert rollback["metadata"]["annotations"]["flux.dev/step"] == "rollback"
    record = result.status["tasks"][0]
    assert record["state"] == "RollingBack" and record["cancelling"] is True
    done = TaskResult(outcome=Outcome.COMPLETED)
    status = {**status, "tasks": [record]}
    after = plan(
        status, [pod(record["pod"], "task", "Succeeded", done), pod("d", "driver", "Running")]
    )
    final = after.status["tasks"][0]
    assert final["state"] == "Cancelled"
    assert [s["type"] for s in final["steps"]] == [
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
    ]


def test_a_cancelled_call_without_rollback_just_stops() -> None:
    status = {**_running(), "cancelRequested": ["say#0"]}
    result = plan(status, [pod("p1", "task", "Running"), pod("d", "driver", "Running")])
    assert "p1" in result.delete and not result.create
    assert result.status["tasks"][0]["state"] == "Cancelled"


def test_a_pending_or_running_pod_is_kept_and_checked_again_at_its_deadline() -> None:
    status = _running({"timeout": 30.0})
    (record,) = status["tasks"]
    running = pod(record["pod"], "task", "Running")
    result = plan(status, [running, pod("d", "driver", "Running")])
    assert record["pod"] not in result.delete
    assert result.wake_at == NOW + dt.timedelta(seconds=30 + CONFIG.timeout_backstop + 1)

    pending = pod(record["pod"], "task", "Pending")
    pending["status"]["containerStatuses"] = []
    result = plan(status, [pending, pod("d", "driver", "Running")])
    assert record["pod"] not in result.delete
    assert result.wake_at == NOW + dt.timedelta(seconds=CONFIG.pending_timeout + 1)


def test_the_operator_fails_a_timed_attempt_only_after_the_pods_own_deadline() -> None:
    """Imports count from the container's start: a module slow to import must not
    time a quick body out. The runner times the body out, the kubelet a stuck pod
    (timeout + DEADLINE_SLACK), and the operator only when neither did."""
    status = _running({"timeout": 1.0})
    (record,) = status["tasks"]
    assert CONFIG.timeout_backstop > DEADLINE_SLACK
    importing = pod(record["pod"], "task", "Running")
    later = NOW + dt.timedelta(seconds=1 + DEADLINE_SLACK)
    result = plan(status, [importing, pod("d", "driver", "Running")], now=later)
    assert result.status.get("tasks", [record])[0]["state"] == record["state"]
    stuck = NOW + dt.timedelta(seconds=1 + CONFIG.timeout_backstop + 1)
    result = plan(status, [importing, pod("d", "driver", "Running")], now=stuck)
    assert result.status["tasks"][0]["lastError"]["type"] == "ExecutionTimeoutError"


def test_outcomes_the_driver_has_not_taken_count_against_the_operator_cap() -> None:
    calls = [{**started(f"say#{i}"), "id": 2 + i} for i in range(5)]
    done = [{"callId": f"say#{i}", "name": "say", "state": "Completed"} for i in range(2)]
    status = {
        "phase": "Running",
        "history": [WF_STARTED, *calls],
        "driver": {"starts": 1, "pod": "d"},
        "tasks": done,
    }
    capped = OperatorConfig(default_image="flux-runtime:test", max_task_pods_per_run=3)
    result = plan_run(
        Observed(run(status), workflow(), [pod("d", "driver", "Running")], NOW), capped
    )
    started_now = [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]
    assert len(started_now) == 1  # 2 records waiting for the driver + 1 pod = the cap


def _task_spec(task_pod: dict[str, Any]) -> TaskSpec:
    env = {e["name"]: e for e in task_pod["spec"]["containers"][0]["env"]}
    return TaskSpec.from_json(json.loads(env[TASK_ENV]["value"]))
