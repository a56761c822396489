"""``task.map(items, batch_size=N)`` on the embedded executor: the same run as without it.

Batching only changes how items are packed into pods on Kubernetes; locally each
item runs as before, and the only trace of the batch is the ``"batch"`` entry of
each item's TASK_STARTED value.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from flux import (
    EventType,
    ExecutionError,
    ExecutionState,
    RetryError,
    WorkflowExecutionContext,
    task,
    workflow,
)

FAST = 0.01


@pytest.fixture(autouse=True)
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "flux-home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    return home


class Flaky(Exception):
    """Raised on purpose (module level, so history can rebuild it)."""


def calls_by_id(ctx: WorkflowExecutionContext[Any]) -> dict[str, list[tuple[str, str, Any]]]:
    """Each call's events, without what depends on the clock or on batching."""
    calls: dict[str, list[tuple[str, str, Any]]] = {}
    for event in ctx.events:
        if event.source_id == ctx.execution_id:
            continue
        value = event.value
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in ("batch", "not_before")}
        calls.setdefault(event.source_id, []).append((event.type.value, event.name, value))
    return calls


def flaky_workflow(batch_size: int | None, fail_always: bool = False) -> Any:
    seen: set[int] = set()
    lock = threading.Lock()

    @task.with_options(name="square", retry_max_attempts=2, retry_delay=FAST)
    def square(n: int) -> int:
        with lock:
            first = n not in seen
            seen.add(n)
        if n == 4 and (first or fail_always):
            raise Flaky(f"item {n} failed")
        return n * n

    @workflow.with_options(name="squares")
    async def squares(ctx: WorkflowExecutionContext[list[int]]) -> list[int]:
        return await square.map(ctx.input, batch_size=batch_size)

    return squares


def test_batched_map_gives_the_same_results_and_events_with_a_retried_item() -> None:
    items = [1, 2, 3, 4, 5, 6, 7]
    plain = flaky_workflow(None).run(items)
    batched = flaky_workflow(3).run(items)
    for ctx in (plain, batched):
        assert ctx.state == ExecutionState.COMPLETED, ctx.output
        assert ctx.output == [n * n for n in items]
    assert calls_by_id(batched) == calls_by_id(plain)
    # The retried item: failed once, then completed on its second attempt.
    assert [t for t, _, _ in calls_by_id(batched)["square#3"]] == [
        "TASK_STARTED",
        "TASK_RETRY_STARTED",
        "TASK_RETRY_COMPLETED",
        "TASK_COMPLETED",
    ]
    started = [e.value for e in batched.events if e.type == EventType.TASK_STARTED]
    assert [v["args"] for v in started] == [[n] for n in items]
    assert {str(v["batch"]) for v in started} == {str({"group": "square#0", "size": 3})}
    assert all("batch" not in e.value for e in plain.events if e.type == EventType.TASK_STARTED)


def test_an_item_that_keeps_failing_fails_the_map_as_without_batching() -> None:
    plain = flaky_workflow(None, fail_always=True).run([1, 4])
    batched = flaky_workflow(2, fail_always=True).run([1, 4])
    for ctx in (plain, batched):
        assert ctx.state == ExecutionState.FAILED
        assert ctx.output["type"] == ExecutionError.__name__
        assert ctx.output["cause"]["type"] == RetryError.__name__
        assert ctx.output["cause"]["cause"]["type"] == Flaky.__name__
    assert calls_by_id(batched) == calls_by_id(plain)


def test_a_finished_batched_run_reads_back_its_results() -> None:
    wf = flaky_workflow(3)
    ctx = wf.run([1, 2, 4])
    assert ctx.output == [1, 4, 16]
    again = wf.run(execution_id=ctx.execution_id)
    assert again.state == ExecutionState.COMPLETED
    assert again.output == [1, 4, 16]


def test_map_with_batch_size_outside_a_workflow_runs_each_item() -> None:
    @task
    async def halve(n: int) -> float:
        return n / 2

    async def main() -> list[float]:
        return await halve.map([2, 4, 6], batch_size=2)

    assert asyncio.run(main()) == [1.0, 2.0, 3.0]
