"""The transactions of a run on the embedded engine (issue 17), and the owner it records.

A run's owner is recorded with its first commit and cleared with the commit that
ends it, not in transactions of their own; every step still commits before its
effects are carried out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from flux import WorkflowExecutionContext, task, workflow
from flux.events import EventType, ExecutionState
from flux.local import open_stores
from flux.local.executor import LocalExecutor
from flux.local.loader import source_of
from flux.local.runs import this_process
from flux.local.store import Store
from flux.tasks import pause

seen_owners: list[str | None] = []
seen_histories: list[list[tuple[str, str]]] = []


async def add_one(x: int) -> int:
    return x + 1


async def note_owner(x: int) -> int:
    with Store() as store:  # another connection, as another process would read it
        runs = store.list_runs(limit=1)
        seen_owners.append(store.owner(runs[0].id))
    return x


async def read_history(x: int) -> int:
    with Store() as store:
        runs = store.list_runs(limit=1)
        events = store.events(runs[0].id)
    seen_histories.append([(e.type.value, e.name) for e in events])
    return x


async def fail(x: int) -> int:
    raise ValueError(f"no {x}")


step = task(add_one)
noting = task(note_owner)
failing = task(fail)
reading = task(read_history)


@workflow
async def no_task(ctx: WorkflowExecutionContext[int]) -> int:
    return ctx.input


@workflow
async def three_tasks(ctx: WorkflowExecutionContext[int]) -> int:
    return await step(await step(await step(ctx.input)))


@workflow
async def noted(ctx: WorkflowExecutionContext[int]) -> int:
    return await noting(ctx.input)


@workflow
async def chained(ctx: WorkflowExecutionContext[int]) -> int:
    return await reading(await step(ctx.input))


@workflow
async def failed(ctx: WorkflowExecutionContext[int]) -> int:
    return await failing(ctx.input)


@workflow
async def paused(ctx: WorkflowExecutionContext[int]) -> int:
    more: int = await pause("gate")
    return ctx.input + more


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    open_stores.close_idle()
    seen_owners.clear()
    seen_histories.clear()
    home = tmp_path / "home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    return home


@pytest.fixture
def transactions() -> Iterator[list[list[str]]]:
    """The statements of each transaction ``wf.run`` commits from now on."""
    committed: list[list[str]] = []
    current: list[str] | None = None

    def trace(statement: str) -> None:
        nonlocal current
        verb = statement.split(None, 1)[0].upper()
        if verb == "BEGIN":
            current = []
        elif verb in ("COMMIT", "ROLLBACK"):
            assert current is not None
            if verb == "COMMIT":
                committed.append(current)
            current = None
        elif verb in ("INSERT", "UPDATE", "DELETE"):
            if current is None:
                committed.append([statement])  # a statement of its own is a transaction
            else:
                current.append(statement)

    with open_stores.borrowed_store() as store:  # the store wf.run borrows next
        store._db.set_trace_callback(trace)
    yield committed
    with open_stores.borrowed_store() as store:
        store._db.set_trace_callback(None)


def owner_of(home: Path, run_id: str) -> str | None:
    with Store(home / "flux.db") as store:
        return store.owner(run_id)


def test_a_run_without_tasks_commits_twice(transactions: list[list[str]]) -> None:
    ctx = no_task.run(1)
    assert ctx.state == ExecutionState.COMPLETED
    # Its creation, then its end (the owner recorded and cleared in the same commit).
    assert len(transactions) == 2, transactions


def test_a_run_of_three_tasks_commits_once_a_step(transactions: list[list[str]]) -> None:
    ctx = three_tasks.run(1)
    assert ctx.output == 4
    # Creation; start with the first call; the second call; the third; the end.
    assert len(transactions) == 5, transactions
    assert not any("owner" in s for t in transactions[2:-1] for s in t)


def test_the_owner_is_recorded_while_the_run_executes(home: Path) -> None:
    ctx = noted.run(5)
    assert ctx.output == 5
    assert seen_owners == [this_process()]
    assert owner_of(home, ctx.execution_id) is None


@pytest.mark.parametrize("wf", [no_task, three_tasks, failed, paused], ids=lambda w: w.name)
def test_no_owner_is_left_once_the_run_stops(home: Path, wf: object) -> None:
    ctx = wf.run(1)  # type: ignore[attr-defined]
    assert ctx.state in (ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.PAUSED)
    assert owner_of(home, ctx.execution_id) is None


def test_a_stale_owner_of_an_interrupted_run_is_cleared(home: Path) -> None:
    with Store(home / "flux.db") as store:
        run_id = LocalExecutor(store).create_run(no_task, 3, source_of(no_task))
        store.set_owner(run_id, "crashed-host:1")  # a process that died executing it
    ctx = no_task.run(3, execution_id=run_id)
    assert ctx.output == 3
    assert owner_of(home, run_id) is None


def test_each_step_is_committed_before_the_next_task_runs(home: Path) -> None:
    ctx = chained.run(1)
    assert ctx.output == 2
    # What another connection saw when the second task began: the first task's
    # result, and the second call itself, already committed.
    (seen,) = seen_histories
    assert (EventType.TASK_COMPLETED.value, "add_one") in seen
    assert (EventType.TASK_STARTED.value, "read_history") in seen


def test_a_paused_run_resumes_with_its_owner_cleared_again(home: Path) -> None:
    ctx = paused.run(1)
    assert ctx.state == ExecutionState.PAUSED
    resumed = paused.resume(ctx.execution_id, 2)
    assert resumed.output == 3
    assert owner_of(home, ctx.execution_id) is None


def test_cancelling_a_stored_run_leaves_no_owner(home: Path) -> None:
    ctx = paused.run(1)
    with Store(home / "flux.db") as store:
        cancelled = asyncio.run(LocalExecutor(store).cancel_stored(paused, ctx.execution_id))
    assert cancelled.state == ExecutionState.CANCELLED
    assert owner_of(home, ctx.execution_id) is None
