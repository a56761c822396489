"""Per-task pod settings on the embedded executor: accepted, recorded, ignored.

They say how a task's pods look on Kubernetes; locally there are no pods, so a
task with them runs exactly as without them, and only its TASK_STARTED value
shows them (the history is the same one a cluster would replay).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flux import EventType, ExecutionState, WorkflowExecutionContext, task, workflow

SETTINGS: dict[str, Any] = {
    "resources": {"requests": {"cpu": "2"}, "limits": {"memory": "1Mi", "nvidia.com/gpu": 8}},
    "node_selector": {"pool": "no-such-pool"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "image": "registry.example.com/never/pulled:1",
}


@pytest.fixture(autouse=True)
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "flux-home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    return home


@task.with_options(**SETTINGS)
def big(n: int) -> list[int]:
    return list(range(n))  # more than "1Mi" would hold on a cluster: ignored here


@workflow
async def uses_big(ctx: WorkflowExecutionContext[int]) -> int:
    return len(await big(ctx.input))


def test_the_embedded_executor_runs_a_task_with_pod_settings_as_without_them() -> None:
    ctx = uses_big.run(200_000)
    assert ctx.state == ExecutionState.COMPLETED and ctx.output == 200_000
    (started,) = [e for e in ctx.events if e.type == EventType.TASK_STARTED]
    assert started.value["pod"]["image"] == SETTINGS["image"]
    assert started.value["pod"]["nodeSelector"] == SETTINGS["node_selector"]


def test_a_task_with_pod_settings_awaited_outside_a_workflow_just_runs() -> None:
    assert len(asyncio.run(_direct())) == 3


async def _direct() -> list[int]:
    return await big(3)
