"""A task's own pod settings on Kubernetes: its pods get them in place of the Workflow's
taskDefaults, a history that carries bad ones fails the call without a pod, a task
image needs the operator's leave, and a container killed at its memory limit is a
failure of the task's code."""

from __future__ import annotations

import dataclasses
from typing import Any

from flux.k8s.config import OperatorConfig
from flux.k8s.pods import pod_settings_refusal
from flux.k8s.reconcile import Observed, plan_run
from flux.pod_settings import PodSettings
from support.k8s_bodies import CONFIG, NOW, WF_STARTED, batched, plan, pod, run, started, workflow

SETTINGS: dict[str, Any] = {
    "resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"nvidia.com/gpu": 1}},
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}
DEFAULTS: dict[str, Any] = {
    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
    "nodeSelector": {"pool": "general"},
    "tolerations": [{"key": "spot", "operator": "Exists"}],
    "serviceAccountName": "tasks",
}


def _wf(**spec: Any) -> dict[str, Any]:
    return workflow(
        entrypoint="examples.hello:hello",
        secrets={"API_KEY": {"secretName": "api", "key": "token"}},
        taskDefaults=DEFAULTS,
        **spec,
    )


def _call(call_id: str = "say#0", pod_settings: Any = None, **policy: Any) -> dict[str, Any]:
    event = started(call_id, **policy)
    if pod_settings is not None:
        event["value"]["pod"] = pod_settings
    return event


def _status(*calls: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "phase": "Running",
        "history": [WF_STARTED, *calls],
        "driver": {"starts": 1, "pod": "d"},
        **extra,
    }


def _record(**fields: Any) -> dict[str, Any]:
    """say#0's record in status: running its first attempt in pod p1, unless told."""
    base = {"callId": "say#0", "name": "say", "state": "Running", "step": "attempt"}
    return {**base, "attempts": 1, "pod": "p1", **fields}


def _task_pods(result: Any) -> list[dict[str, Any]]:
    return [p for p in result.create if p["metadata"]["labels"]["flux.dev/role"] == "task"]


def test_a_tasks_own_settings_replace_the_workflows_for_its_pods_only() -> None:
    status = _status(_call("say#0", SETTINGS), _call("say#1"))
    result = plan(status, [pod("d", "driver", "Running")], wf=_wf())
    own, plain = _task_pods(result)
    spec, container = own["spec"], own["spec"]["containers"][0]
    assert container["resources"] == SETTINGS["resources"]  # as a whole: no 256Mi limit
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["tolerations"] == SETTINGS["tolerations"]
    # What the task did not set is the Workflow's; what no task sets stays as it is.
    assert spec["serviceAccountName"] == "tasks"
    assert container["image"] == CONFIG.default_image
    assert spec["automountServiceAccountToken"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert plain["spec"]["containers"][0]["resources"] == DEFAULTS["resources"]
    assert plain["spec"]["nodeSelector"] == {"pool": "general"}
    assert plain["spec"]["tolerations"] == DEFAULTS["tolerations"]


def test_an_empty_setting_clears_the_workflows() -> None:
    status = _status(_call("say#0", {"nodeSelector": {}, "tolerations": []}))
    (created,) = _task_pods(plan(status, [pod("d", "driver", "Running")], wf=_wf()))
    assert "nodeSelector" not in created["spec"] and "tolerations" not in created["spec"]
    assert created["spec"]["containers"][0]["resources"] == DEFAULTS["resources"]


def test_retry_fallback_and_rollback_pods_of_the_call_get_the_settings_too() -> None:
    status = _status(_call("say#0", SETTINGS, has_rollback=True))
    status["tasks"] = [
        _record(
            state="RollingBack",
            step="rollback",
            pod=None,
            triggerError={"type": "ValueError", "message": "boom", "kind": "code"},
        )
    ]
    result = plan(status, [pod("d", "driver", "Running")], wf=_wf())
    (created,) = _task_pods(result)
    assert created["metadata"]["annotations"]["flux.dev/step"] == "rollback"
    assert created["spec"]["nodeSelector"] == {"pool": "gpu"}


def test_the_items_of_a_batched_map_share_a_pod_with_the_tasks_settings() -> None:
    calls = []
    for i in range(3):
        event = batched(i)
        event["value"]["pod"] = {"resources": {"limits": {"memory": "1Gi"}}}
        calls.append(event)
    (created,) = _task_pods(plan(_status(*calls), [pod("d", "driver", "Running")], wf=_wf()))
    assert created["metadata"]["annotations"]["flux.dev/batch-size"] == "3"
    assert created["spec"]["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}}


def test_a_history_with_bad_pod_settings_fails_the_call_without_a_pod() -> None:
    forged = {"image": "x:1", "securityContext": {"privileged": True}}
    status = _status(_call("say#0", forged), _call("say#1"))
    result = plan(status, [pod("d", "driver", "Running")], wf=_wf())
    (created,) = _task_pods(result)
    assert created["metadata"]["annotations"]["flux.dev/call-id"] == "say#1"
    records = {r["callId"]: r for r in result.status["tasks"]}
    failed = records["say#0"]
    assert failed["state"] == "Failed" and failed["attempts"] == 0
    assert failed["lastError"]["type"] == "PodSettingsRefused"
    assert "unknown field(s) securityContext" in failed["lastError"]["message"]
    assert records["say#1"]["pod"] == created["metadata"]["name"]
    assert any("PodSettingsRefused" in message for _, _, message in result.events)


def test_a_refused_call_deep_in_the_queue_ends_without_waiting_for_room() -> None:
    """Calls that end without a pod are found wherever they wait, as with secrets."""
    wf = _wf(parallelism=1)
    calls = [_call(f"say#{i}") for i in range(5)]
    calls.append(_call("bad#0", {"tolerations": "all"}))
    result = plan(_status(*calls), [pod("d", "driver", "Running")], wf=wf)
    assert len(_task_pods(result)) == 1
    records = {r["callId"]: r for r in result.status["tasks"]}
    assert records["bad#0"]["state"] == "Failed"
    assert "tolerations must be a list" in records["bad#0"]["error"]["message"]


def test_a_task_image_needs_the_operators_allow_list() -> None:
    status = _status(_call("say#0", {"image": "registry.example.com/ml/trainer:2"}))
    refused = plan(status, [pod("d", "driver", "Running")], wf=_wf())
    assert not _task_pods(refused)
    (record,) = refused.status["tasks"]
    assert record["lastError"]["type"] == "PodSettingsRefused"
    assert "FLUX_ALLOWED_TASK_IMAGES" in record["lastError"]["message"]

    allowing = dataclasses.replace(CONFIG, allowed_task_images=("registry.example.com/ml/*",))
    observed = Observed(run(status), _wf(), [pod("d", "driver", "Running")], NOW)
    (created,) = _task_pods(plan_run(observed, allowing))
    container = created["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/ml/trainer:2"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert created["spec"]["automountServiceAccountToken"] is False
    assert "imagePullSecrets" not in created["spec"]


def test_the_workflows_own_image_is_always_allowed() -> None:
    wf = _wf(image="registry.example.com/team/app:7")
    settings = PodSettings(image="registry.example.com/team/app:7")
    own = "registry.example.com/team/app:7"
    assert pod_settings_refusal(settings, None, own, CONFIG) is None
    default = CONFIG.default_image
    assert pod_settings_refusal(PodSettings(image=default), None, default, CONFIG) is None
    assert pod_settings_refusal(PodSettings(image="other:1"), None, own, CONFIG) is not None
    status = _status(_call("say#0", {"image": own}))
    (task,) = _task_pods(plan(status, [pod("d", "driver", "Running")], wf=wf))
    assert task["spec"]["containers"][0]["image"] == own


def test_the_allow_list_comes_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("FLUX_ALLOWED_TASK_IMAGES", " registry.example.com/* , python:3.12 ,")
    config = OperatorConfig.from_env()
    assert config.allowed_task_images == ("registry.example.com/*", "python:3.12")
    assert config.allows_task_image("registry.example.com/a/b:1")
    assert not config.allows_task_image("python:3.13")
    assert not OperatorConfig().allows_task_image("python:3.12")


def test_a_retry_whose_image_was_since_refused_fails_instead_of_starting() -> None:
    status = _status(_call("say#0", {"image": "python:3.12"}, retry_max_attempts=2))
    status["tasks"] = [_record(state="Retrying", pod=None, nextAttemptAt=NOW.isoformat())]
    result = plan(status, [pod("d", "driver", "Running")], wf=_wf())
    assert not _task_pods(result)
    (record,) = result.status["tasks"]
    assert record["state"] == "Failed"
    assert record["lastError"]["type"] == "PodSettingsRefused"


def _oom_killed(name: str) -> dict[str, Any]:
    killed = pod(name, "task", "Failed")
    terminated = killed["status"]["containerStatuses"][0]["state"]["terminated"]
    terminated.update(exitCode=137, reason="OOMKilled")
    return killed


def test_a_container_killed_at_its_memory_limit_fails_as_code_and_is_retried() -> None:
    status = _status(
        _call("say#0", {"resources": {"limits": {"memory": "64Mi"}}}, retry_max_attempts=1)
    )
    status["tasks"] = [_record()]
    result = plan(status, [_oom_killed("p1"), pod("d", "driver", "Running")], wf=_wf())
    (record,) = result.status["tasks"]
    assert record["state"] == "Retrying"
    error = record["lastError"]
    assert error["kind"] == "code" and error["reason"] == "OOMKilled" and error["exitCode"] == 137
    assert "more memory than its limit" in error["message"]
    retry = record["steps"][0]
    assert retry["type"] == "TASK_RETRY_STARTED" and retry["value"]["error"]["kind"] == "code"


def test_an_eviction_for_memory_pressure_is_the_clusters_doing() -> None:
    status = _status(_call("say#0"))
    status["tasks"] = [_record()]
    evicted = pod("p1", "task", "Failed", reason="Evicted", message="The node was low on memory.")
    result = plan(status, [evicted, pod("d", "driver", "Running")], wf=_wf())
    (record,) = result.status["tasks"]
    assert record["lastError"]["kind"] == "infrastructure"
    assert record["attempts"] == 1 and record["infrastructureRetries"] == 1
