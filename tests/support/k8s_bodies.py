"""Builders of WorkflowRun, Workflow and pod bodies as the operator sees them,
for the tests of the pure decisions (``plan_run``) and the drivers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flux.k8s.config import OperatorConfig
from flux.k8s.protocol import TaskResult
from flux.k8s.reconcile import Observed, plan_run

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
CONFIG = OperatorConfig(default_image="flux-runtime:test")


def workflow(ready: str = "True", message: str = "ok", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "wf", "namespace": "ns", "generation": 1, "uid": "wf-uid"},
        "spec": spec
        or {
            "entrypoint": "examples.hello:hello",
            "secrets": {"API_KEY": {"secretName": "api", "key": "token"}},
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "message": message, "observedGeneration": 1}
            ]
        },
    }


def run(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "flux.dev/v1alpha1",
        "kind": "WorkflowRun",
        "metadata": {"name": "r1", "namespace": "ns", "uid": "run-uid", "generation": 1},
        "spec": {"workflowRef": {"name": "wf"}, "input": "World"},
        "status": status or {},
    }


def started(call_id: str, name: str = "say", **policy: Any) -> dict[str, Any]:
    return {
        "id": 2,
        "type": "TASK_STARTED",
        "sourceId": call_id,
        "name": name,
        "time": NOW.isoformat(),
        "value": {
            "args": ["World"],
            "kwargs": {},
            "task": "examples.hello:say_hello",
            "policy": {
                "retry_max_attempts": 0,
                "retry_delay": 1.0,
                "retry_backoff": 2.0,
                "timeout": 0.0,
                **policy,
            },
            "secrets": ["API_KEY"],
        },
    }


WF_STARTED = {
    "id": 1,
    "type": "WORKFLOW_STARTED",
    "sourceId": "r1",
    "name": "hello",
    "time": NOW.isoformat(),
    "value": "World",
}


def pod(
    name: str, role: str, phase: str, result: TaskResult | None = None, **status: Any
) -> dict[str, Any]:
    terminated = {"exitCode": 0 if phase == "Succeeded" else 1}
    if result is not None:
        terminated["message"] = result.to_message()
    state = (
        {"terminated": terminated}
        if phase in ("Succeeded", "Failed")
        else {"running": {"startedAt": NOW.isoformat()}}
    )
    return {
        "metadata": {
            "name": name,
            "labels": {"flux.dev/role": role, "flux.dev/run": "r1"},
            "creationTimestamp": NOW.isoformat(),
        },
        "status": {"phase": phase, "containerStatuses": [{"state": state}], **status},
    }


def plan(
    status: dict[str, Any] | None = None,
    pods: list[dict[str, Any]] | None = None,
    wf: dict[str, Any] | None = None,
    now: dt.datetime = NOW,
) -> Any:
    return plan_run(
        Observed(run(status), wf if wf is not None else workflow(), pods or [], now), CONFIG
    )


def batched(i: int, size: int = 3, **policy: Any) -> dict[str, Any]:
    event = {**started(f"say#{i}", **policy), "id": 2 + i}
    event["value"] = {
        **event["value"],
        "args": [i],
        "secrets": [],
        "batch": {"group": "say#0", "size": size},
    }
    return event


def logged_task_pod(name: str, call_id: str, attempt: int, state: dict[str, Any]) -> dict[str, Any]:
    """A task pod of run r1 whose container is in ``state``, for the task-log tests."""
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"flux.dev/role": "task", "flux.dev/run": "r1"},
            "annotations": {
                "flux.dev/call-id": call_id,
                "flux.dev/step": "attempt",
                "flux.dev/attempt": str(attempt),
            },
        },
        "status": {"containerStatuses": [{"state": state}]},
    }
