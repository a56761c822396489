"""The Workflow and WorkflowRun models: parsing what the API returns, and back."""

from __future__ import annotations

import copy
import datetime as dt
from types import MappingProxyType
from typing import Any

import pytest
from pydantic import ValidationError

from flux.events import EventType, ExecutionEvent
from flux.k8s.models import (
    HistoryEvent,
    Workflow,
    WorkflowRun,
    WorkflowRunStatus,
    WorkflowSpec,
    plain,
    to_json,
)
from flux.k8s.states import Phase, Step, TaskState

NOW = "2026-01-01T12:00:00+00:00"

# Every status field the operator (reconcile, calls) and the driver write; a field
# the models lack is one the API server would prune.
FULL_STATUS: dict[str, Any] = {
    "phase": "Running",
    "conditions": [
        {
            "type": "Succeeded",
            "status": "Unknown",
            "reason": "Running",
            "message": "the run is running",
            "lastTransitionTime": NOW,
        },
    ],
    "startTime": NOW,
    "output": {"nested": [1, None, {"x": None}]},
    "error": {"type": "ValueError", "message": "ValueError: bad", "kind": "code"},
    "tasks": [
        {
            "callId": "say#0",
            "name": "say",
            "state": "Retrying",
            "step": "attempt",
            "attempts": 2,
            "startTime": NOW,
            "podStarts": 2,
            "nextAttemptAt": NOW,
            "lastError": {
                "type": "PodFailed",
                "message": "exit 1",
                "kind": "code",
                "exitCode": 1,
                "reason": "Error",
            },
            "infrastructureRetries": 1,
        },
        {
            "callId": "say#1",
            "name": "say",
            "state": "Completed",
            "step": "fallback",
            "attempts": 1,
            "startTime": NOW,
            "finishTime": NOW,
            "podStarts": 2,
            "infrastructureRetries": 0,
            "triggerError": {
                "type": "ValueError",
                "module": "builtins",
                "message": "x",
                "kind": "code",
            },
            "output": "hello",
        },
        {
            "callId": "say#2",
            "name": "say",
            "state": "Failed",
            "step": "attempt",
            "attempts": 1,
            "podStarts": 1,
            "infrastructureRetries": 0,
            "error": {
                "type": "ExecutionError",
                "message": "m",
                "kind": "code",
                "cause": {"type": "ValueError", "message": "x"},
            },
        },
    ],
    "pause": {"name": "approve", "output": ["ORDER-7"]},
    "resume": {"input": "yes"},
    "history": [
        {
            "id": 1,
            "type": "WORKFLOW_STARTED",
            "sourceId": "r1",
            "name": "hello",
            "time": NOW,
            "value": "World",
        },
        {
            "id": 2,
            "type": "TASK_STARTED",
            "sourceId": "say#0",
            "name": "say",
            "time": NOW,
            "value": {"args": ["World"], "kwargs": {}, "task": "m:say"},
        },
    ],
    "driver": {"starts": 3, "failures": 1, "pod": "r1-driver-3-abc", "lastFailure": NOW},
}


def run_body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {
            "name": "r1",
            "namespace": "ns",
            "uid": "u",
            "generation": 1,
            "resourceVersion": "42",
            "labels": {"a": "b"},
        },
        "spec": {"workflowRef": {"name": "hello"}, "input": "World"},
        "status": status or {},
    }


def times_as_z(value: Any) -> Any:
    """The API's form of a UTC time; pydantic writes it the same way."""
    if isinstance(value, dict):
        return {k: times_as_z(v) for k, v in value.items()}
    if isinstance(value, list):
        return [times_as_z(v) for v in value]
    return value.replace("+00:00", "Z") if value == NOW else value


def test_a_run_status_survives_the_round_trip() -> None:
    run = WorkflowRun.model_validate(run_body(copy.deepcopy(FULL_STATUS)))
    assert run.status.phase == Phase.RUNNING
    assert run.status.tasks[0].next_attempt_at == dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert run.status.tasks[0].last_error is not None
    assert run.status.tasks[0].last_error.exit_code == 1
    assert run.status.tasks[1].state == TaskState.COMPLETED
    assert run.status.tasks[1].step == Step.FALLBACK
    assert run.status.driver is not None and run.status.driver.starts == 3
    assert to_json(run.status) == times_as_z(FULL_STATUS)


def test_a_fresh_run_has_defaults() -> None:
    run = WorkflowRun.model_validate(run_body())
    assert run.metadata.name == "r1" and run.metadata.resource_version == "42"
    assert run.spec.workflow_ref.name == "hello" and run.spec.input == "World"
    assert run.status.phase == Phase.PENDING
    assert run.status.history == [] and run.status.resume is None


@pytest.mark.parametrize("value", [None, 3, "x", [1, "a"], {"k": [None, {"z": 1.5}]}])
def test_input_is_any_json(value: Any) -> None:
    body = run_body()
    body["spec"]["input"] = value
    assert WorkflowRun.model_validate(body).spec.input == value


def test_kopf_mapping_views_are_read() -> None:
    spec = MappingProxyType(
        {
            "entrypoint": "m:f",
            "secrets": MappingProxyType(
                {"API_KEY": MappingProxyType({"secretName": "api", "key": "token"})}
            ),
        }
    )
    # What the operator does with a Workflow's spec from a kopf handler (workflow_ready).
    assert plain(spec) == {
        "entrypoint": "m:f",
        "secrets": {"API_KEY": {"secretName": "api", "key": "token"}},
    }
    assert WorkflowSpec.model_validate(plain(spec)).secrets["API_KEY"].secret_name == "api"
    workflow = Workflow.model_validate(plain({"metadata": {"name": "w"}, "spec": spec}))
    assert workflow.status.conditions == []


def test_workflow_spec_fields_by_name_and_by_alias() -> None:
    by_name = WorkflowSpec.model_validate(
        {"entrypoint": "m:f", "task_defaults": {"node_selector": {"disk": "ssd"}}}
    )
    by_alias = WorkflowSpec.model_validate(
        {"entrypoint": "m:f", "taskDefaults": {"nodeSelector": {"disk": "ssd"}}}
    )
    assert by_name == by_alias
    assert to_json(by_alias) == {
        "entrypoint": "m:f",
        "secrets": {},
        "taskDefaults": {"nodeSelector": {"disk": "ssd"}, "tolerations": []},
        "driverMode": "PerRun",
    }


def test_task_defaults_take_pod_shaped_values() -> None:
    spec = WorkflowSpec.model_validate(
        {
            "entrypoint": "m:f",
            "taskDefaults": {
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 2}},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                "serviceAccountName": "tasks",
            },
        }
    )
    assert spec.task_defaults is not None and spec.task_defaults.resources is not None
    assert spec.task_defaults.resources.limits == {"cpu": 2}
    assert spec.task_defaults.tolerations[0]["operator"] == "Exists"
    with pytest.raises(ValidationError, match="pattern"):
        WorkflowSpec.model_validate(
            {"entrypoint": "m:f", "taskDefaults": {"resources": {"limits": {"cpu": "lots"}}}}
        )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"entrypoint": "m:f", "source": "x"}, "exactly one"),
        ({"function": "f"}, "exactly one"),
        ({"source": "x"}, "spec.function is required"),
        ({"entrypoint": "m:f", "function": "f"}, "spec.function is required"),
        ({"entrypoint": "m:f", "secrets": {"K": {"secretName": "s"}}}, "key"),
    ],
)
def test_workflow_spec_rules(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkflowSpec.model_validate(spec)


def test_history_events_convert_to_and_from_the_engine() -> None:
    event = ExecutionEvent(
        EventType.TASK_PAUSED,
        "approve#0",
        "approve",
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        {"output": [1, None]},
        7,
    )
    model = HistoryEvent.from_event(event)
    assert (model.id, model.source_id, model.value) == (7, "approve#0", {"output": [1, None]})
    assert model.to_event() == event


def test_unknown_status_fields_are_ignored() -> None:
    status = WorkflowRunStatus.model_validate({"phase": "Paused", "somethingNew": 1})
    assert to_json(status) == {"phase": "Paused", "conditions": [], "tasks": [], "history": []}
