"""The task-system contract (flux-task-system.md), rule by rule, on the embedded executor.

Every test runs real workflows through the inline API (``wf.run``/``wf.resume``)
against a fresh store. Retry delays are kept short here; the 1 s/2 s/4 s
arithmetic and the 600 s cap are checked on the policy itself in
tests/unit/engine/test_policy.py. Concurrency is proven without timing: tasks that
must overlap wait for each other at a barrier, which fails (after a generous
guard timeout) when they do not.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from flux import (
    EventType,
    ExecutionContext,
    ExecutionError,
    ExecutionState,
    ExecutionTimeoutError,
    NonDeterminismError,
    RetryError,
    StorageReference,
    WorkflowExecutionContext,
    task,
    workflow,
)
from flux.codec import decode, expect
from flux.errors import CodecError, PauseMismatchError, SecretsNotFoundError
from flux.events import ExecutionEvent
from flux.local import runs
from flux.local.executor import LocalExecutor
from flux.local.loader import source_of
from flux.local.secrets import SecretStore
from flux.local.storage import LocalFileStorage
from flux.local.store import Store
from flux.tasks import (
    Graph,
    choice,
    now,
    parallel,
    pause,
    pipeline,
    randint,
    randrange,
    sleep,
    uuid4,
)

FAST = 0.01  # retry delay for tests that retry
GUARD = 20  # seconds a barrier or event may wait before the test counts as failed


@pytest.fixture(autouse=True)
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "flux-home"
    monkeypatch.setenv("FLUX_HOME", str(home))
    monkeypatch.delenv("FLUX_SECRET_KEY", raising=False)
    for name in ("API_KEY", "TOKEN", "DB_PASSWORD", "MISSING_A", "MISSING_B"):
        monkeypatch.delenv(f"FLUX_SECRET_{name}", raising=False)
    return home


class Boom(Exception):
    """An error the tests raise on purpose (module level, so history can rebuild it)."""


class CleanupFailed(Exception):
    pass


class FallbackFailed(Exception):
    pass


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Invoice(BaseModel):
    number: str
    amount: Decimal
    issued: dt.date


class Opaque:
    """Not encodable by the codec."""


# ----------------------------------------------------------------- helpers


def succeeded(ctx: WorkflowExecutionContext[Any]) -> Any:
    assert ctx.state == ExecutionState.COMPLETED, ctx.output
    return ctx.output


def types_of(ctx: WorkflowExecutionContext[Any], call_id: str) -> list[EventType]:
    return [e.type for e in ctx.events if e.source_id == call_id]


def values_of(ctx: WorkflowExecutionContext[Any], event_type: EventType) -> list[Any]:
    return [e.value for e in ctx.events if e.type == event_type]


def catch(coro: Any) -> Any:
    """Await ``coro``; return the ExecutionError it raises (for workflows to report)."""

    async def run() -> Any:
        try:
            return await coro
        except ExecutionError as error:
            return error

    return run()


def chain(error: BaseException | None) -> list[str]:
    """Class names from an ExecutionError down to the innermost cause."""
    names = []
    while error is not None:
        names.append(type(error).__name__)
        error = getattr(error, "inner_exception", None)
    return names


def describe(error: BaseException) -> dict[str, Any]:
    return {"chain": chain(error), "message": str(error)}


# ------------------------------------------------------------ task options


def test_name_defaults_to_the_function_name() -> None:
    @task
    def plain_name(x: int) -> int:
        return x

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> int:
        return await plain_name(1)

    ctx = wf.run()
    assert succeeded(ctx) == 1
    assert [e.name for e in ctx.events if e.source_id == "plain_name#0"] == ["plain_name"] * 2


def test_name_templates_format_positional_and_keyword_arguments() -> None:
    @task.with_options(name="process_{0}")
    def process(item: str) -> str:
        return item.upper()

    @task.with_options(name="fetch_{url}")
    async def fetch(url: str, retries: int = 0) -> str:
        return f"got {url}"

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> list[str]:
        return [
            await process("a"),
            await process("a"),
            await fetch(url="x"),
            await fetch("y"),
        ]

    ctx = wf.run()
    assert succeeded(ctx) == ["A", "A", "got x", "got y"]
    started = [(e.source_id, e.name) for e in ctx.events if e.type == EventType.TASK_STARTED]
    assert started == [
        ("process_a#0", "process_a"),
        ("process_a#1", "process_a"),
        ("fetch_x#0", "fetch_x"),
        ("fetch_y#0", "fetch_y"),
    ]


def test_with_options_also_applies_to_an_existing_task() -> None:
    calls: list[int] = []

    @task
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise Boom("not yet")
        return x * 10

    patient = task.with_options(retry_max_attempts=2, retry_delay=FAST)(flaky)
    renamed = flaky.with_options(name="renamed_{0}")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        first = await patient(4)
        calls.clear()
        calls.extend([0, 0])  # the next attempt succeeds
        return [first, await renamed(5)]

    ctx = wf.run()
    assert succeeded(ctx) == [40, 50]
    assert flaky.options.retry_max_attempts == 0
    assert "renamed_5#0" in {e.source_id for e in ctx.events}


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retry_max_attempts_counts_retries_after_the_first_attempt(retries: int) -> None:
    attempts: list[int] = []

    @task.with_options(retry_max_attempts=retries, retry_delay=FAST)
    def always_fails() -> None:
        attempts.append(1)
        raise Boom(f"attempt {len(attempts)}")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(always_fails()))

    ctx = wf.run()
    assert len(attempts) == 1 + retries
    result = succeeded(ctx)
    if retries:
        assert result["chain"] == ["ExecutionError", "RetryError", "Boom"]
        assert f"failed after {1 + retries} attempts" in result["message"]
        assert f"attempt {1 + retries}" in result["message"]  # wraps the LAST error
    else:
        assert result["chain"] == ["ExecutionError", "Boom"]
    retry_started = values_of(ctx, EventType.TASK_RETRY_STARTED)
    assert [v["attempt"] for v in retry_started] == list(range(2, 2 + retries))
    assert len(values_of(ctx, EventType.TASK_RETRY_FAILED)) == retries


def test_retry_delays_grow_by_the_backoff() -> None:
    @task.with_options(retry_max_attempts=3, retry_delay=FAST, retry_backoff=3)
    def always_fails() -> None:
        raise Boom("no")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(always_fails()))

    ctx = wf.run()
    succeeded(ctx)
    delays = [v["delay"] for v in values_of(ctx, EventType.TASK_RETRY_STARTED)]
    assert delays == pytest.approx([FAST, FAST * 3, FAST * 9])
    for value in values_of(ctx, EventType.TASK_RETRY_STARTED):
        assert value["error"]["type"] == "Boom"


def test_a_retry_that_succeeds_returns_its_value() -> None:
    attempts: list[int] = []

    @task.with_options(retry_max_attempts=3, retry_delay=FAST)
    def third_time_lucky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Boom("not yet")
        return "done"

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> str:
        return await third_time_lucky()

    ctx = wf.run()
    assert succeeded(ctx) == "done"
    assert types_of(ctx, "third_time_lucky#0") == [
        EventType.TASK_STARTED,
        EventType.TASK_RETRY_STARTED,
        EventType.TASK_RETRY_FAILED,
        EventType.TASK_RETRY_STARTED,
        EventType.TASK_RETRY_COMPLETED,
        EventType.TASK_COMPLETED,
    ]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_timeout_holds_for_blocking_code_and_the_late_result_is_discarded(kind: str) -> None:
    release = threading.Event()
    finished = threading.Event()

    if kind == "sync":

        @task.with_options(timeout=0.2)
        def blocking() -> str:
            release.wait(GUARD)
            finished.set()
            return "late"

    else:

        @task.with_options(timeout=0.2)
        async def blocking() -> str:
            release.wait(GUARD)  # blocks its thread, as badly written async code does
            finished.set()
            return "late"

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(blocking()))

    try:
        ctx = wf.run()
        # The run is over while the body is still blocked: the deadline did not wait for it.
        assert not finished.is_set()
    finally:
        release.set()
    assert finished.wait(GUARD)
    result = succeeded(ctx)
    assert result["chain"] == ["ExecutionError", "ExecutionTimeoutError"]
    assert "exceeded its timeout of 0.2s" in result["message"]
    assert EventType.TASK_COMPLETED not in types_of(ctx, "blocking#0")
    again = wf.run(execution_id=ctx.execution_id)
    assert again.output == result
    assert len(again.events) == len(ctx.events)  # the late result never reached history


def test_timeout_applies_to_each_attempt_and_counts_as_a_failure_for_retries() -> None:
    release = threading.Event()
    attempts: list[int] = []

    @task.with_options(timeout=0.1, retry_max_attempts=2, retry_delay=FAST)
    def hangs() -> None:
        attempts.append(1)
        release.wait(GUARD)

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(hangs()))

    try:
        ctx = wf.run()
    finally:
        release.set()
    assert len(attempts) == 3
    assert succeeded(ctx)["chain"] == ["ExecutionError", "RetryError", "ExecutionTimeoutError"]
    errors = [v["error"]["type"] for v in values_of(ctx, EventType.TASK_RETRY_STARTED)]
    assert errors == ["ExecutionTimeoutError", "ExecutionTimeoutError"]


def test_a_timeout_is_followed_by_the_fallback() -> None:
    release = threading.Event()

    @task.with_options(timeout=0.1, fallback=lambda n: f"fallback for {n}")
    def hangs(n: int) -> str:
        release.wait(GUARD)
        return "late"

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> str:
        return await hangs(7)

    try:
        ctx = wf.run()
    finally:
        release.set()
    assert succeeded(ctx) == "fallback for 7"
    fallback_started = values_of(ctx, EventType.TASK_FALLBACK_STARTED)
    assert fallback_started[0]["error"]["type"] == "ExecutionTimeoutError"


def test_fallback_gets_the_task_arguments_once_retries_are_exhausted() -> None:
    attempts: list[int] = []
    seen: list[Any] = []

    def fallback(a: int, b: str = "-", *, c: bool = False) -> str:
        seen.append((a, b, c))
        return f"fallback {a} {b} {c}"

    @task.with_options(fallback=fallback, retry_max_attempts=2, retry_delay=FAST)
    def fails(a: int, b: str = "-", *, c: bool = False) -> str:
        attempts.append(1)
        raise Boom("always")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> str:
        return await fails(1, "two", c=True)

    ctx = wf.run()
    assert succeeded(ctx) == "fallback 1 two True"
    assert len(attempts) == 3
    assert seen == [(1, "two", True)]
    assert types_of(ctx, "fails#0")[-3:] == [
        EventType.TASK_FALLBACK_STARTED,
        EventType.TASK_FALLBACK_COMPLETED,
        EventType.TASK_COMPLETED,
    ]
    started = values_of(ctx, EventType.TASK_FALLBACK_STARTED)[0]
    assert started["error"]["type"] == "RetryError"


def test_fallback_runs_at_once_without_retries_and_may_be_async() -> None:
    attempts: list[int] = []

    async def fallback(x: int) -> int:
        await asyncio.sleep(0)
        return -x

    @task.with_options(fallback=fallback)
    async def fails(x: int) -> int:
        attempts.append(1)
        raise Boom("nope")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> int:
        return await fails(3)

    ctx = wf.run()
    assert succeeded(ctx) == -3
    assert attempts == [1]
    assert EventType.TASK_RETRY_STARTED not in types_of(ctx, "fails#0")


def test_a_failing_fallback_fails_the_task_with_its_error_and_no_rollback_runs() -> None:
    rolled_back: list[Any] = []

    def fallback(x: int) -> int:
        raise FallbackFailed(f"fallback could not handle {x}")

    @task.with_options(fallback=fallback, rollback=rolled_back.append)
    def fails(x: int) -> int:
        raise Boom("original")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(fails(5)))

    ctx = wf.run()
    result = succeeded(ctx)
    assert result["chain"] == ["ExecutionError", "FallbackFailed"]
    assert "fallback could not handle 5" in result["message"]
    assert rolled_back == []
    call = types_of(ctx, "fails#0")
    assert EventType.TASK_FALLBACK_FAILED in call
    assert EventType.TASK_ROLLBACK_STARTED not in call


def test_a_task_with_fallback_and_rollback_uses_only_the_fallback() -> None:
    rolled_back: list[Any] = []

    @task.with_options(fallback=lambda x: "saved", rollback=rolled_back.append)
    def fails(x: int) -> str:
        raise Boom("original")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> str:
        return await fails(1)

    assert succeeded(wf.run()) == "saved"
    assert rolled_back == []


def test_rollback_runs_with_the_task_arguments_and_the_original_error_propagates() -> None:
    rolled_back: list[Any] = []
    attempts: list[int] = []

    async def rollback(order: str, qty: int) -> None:
        rolled_back.append((order, qty))

    @task.with_options(rollback=rollback, retry_max_attempts=1, retry_delay=FAST)
    def reserve(order: str, qty: int) -> None:
        attempts.append(1)
        raise Boom(f"cannot reserve {qty} for {order}")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(reserve("o-1", qty=2)))

    ctx = wf.run()
    result = succeeded(ctx)
    assert rolled_back == [("o-1", 2)]  # once, after the last attempt
    assert len(attempts) == 2
    assert result["chain"] == ["ExecutionError", "RetryError", "Boom"]
    assert "cannot reserve 2 for o-1" in result["message"]
    assert types_of(ctx, "reserve#0")[-3:] == [
        EventType.TASK_ROLLBACK_STARTED,
        EventType.TASK_ROLLBACK_COMPLETED,
        EventType.TASK_FAILED,
    ]


def test_a_failing_rollback_propagates_its_own_error() -> None:
    def rollback(x: int) -> None:
        raise CleanupFailed(f"could not undo {x}")

    @task.with_options(rollback=rollback)
    def fails(x: int) -> None:
        raise Boom("original")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(fails(9)))

    ctx = wf.run()
    result = succeeded(ctx)
    assert result["chain"] == ["ExecutionError", "CleanupFailed"]
    assert "could not undo 9" in result["message"]
    assert EventType.TASK_ROLLBACK_FAILED in types_of(ctx, "fails#0")


def test_a_successful_task_never_calls_fallback_or_rollback() -> None:
    called: list[str] = []

    @task.with_options(
        fallback=lambda: called.append("fallback"), rollback=lambda: called.append("rollback")
    )
    def fine() -> str:
        return "ok"

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> str:
        return await fine()

    assert succeeded(wf.run()) == "ok"
    assert called == []


# ---------------------------------------------------------------- secrets


def test_secret_requests_arrive_as_the_secrets_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUX_SECRET_API_KEY", "env-value-123")
    with Store() as store:
        SecretStore(store).set("DB_PASSWORD", "stored-value-456")

    @task.with_options(secret_requests=["API_KEY", "DB_PASSWORD"])
    def connect(host: str, secrets: dict[str, str] | None = None) -> dict[str, Any]:
        assert secrets is not None
        return {"host": host, "lengths": {k: len(v) for k, v in sorted(secrets.items())}}

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return await connect("db.local")

    ctx = wf.run()
    assert succeeded(ctx) == {"host": "db.local", "lengths": {"API_KEY": 13, "DB_PASSWORD": 16}}


def test_secret_values_never_reach_history_context_or_the_store(
    monkeypatch: pytest.MonkeyPatch, flux_home: Path
) -> None:
    monkeypatch.setenv("FLUX_SECRET_TOKEN", "tok-SUPER-SECRET-789")

    @task.with_options(secret_requests=["TOKEN"], retry_max_attempts=1, retry_delay=FAST)
    def uses_token(secrets: dict[str, str] | None = None) -> str:
        assert secrets == {"TOKEN": "tok-SUPER-SECRET-789"}
        raise Boom("the service refused the request")

    @workflow.with_options(secret_requests=["TOKEN"])
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        assert ctx.secrets == {"TOKEN": "tok-SUPER-SECRET-789"}
        return describe(await catch(uses_token()))

    ctx = wf.run()
    assert succeeded(ctx)["chain"] == ["ExecutionError", "RetryError", "Boom"]
    assert "tok-SUPER-SECRET-789" not in ctx.to_json()
    assert "tok-SUPER-SECRET-789" not in repr([e.to_dict() for e in ctx.events])
    started = values_of(ctx, EventType.TASK_STARTED)[0]
    assert started["secrets"] == ["TOKEN"]  # the names only
    assert started["kwargs"] == {}
    stored = b"".join(p.read_bytes() for p in flux_home.rglob("*") if p.is_file())
    assert b"tok-SUPER-SECRET-789" not in stored


def test_a_missing_secret_fails_before_the_body_runs_naming_every_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLUX_SECRET_API_KEY", "present")
    ran: list[int] = []

    @task.with_options(secret_requests=["MISSING_B", "API_KEY", "MISSING_A"], retry_max_attempts=2)
    def needs_secrets(secrets: dict[str, str] | None = None) -> None:
        ran.append(1)

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(needs_secrets()))

    ctx = wf.run()
    result = succeeded(ctx)
    assert ran == []
    assert "MISSING_A" in result["message"]
    assert "MISSING_B" in result["message"]
    assert "API_KEY" not in result["message"]
    assert "needs_secrets" in result["message"]
    assert EventType.TASK_RETRY_STARTED not in types_of(ctx, "needs_secrets#0")


def test_a_workflow_with_missing_secrets_is_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    @workflow.with_options(secret_requests=["MISSING_A", "MISSING_B"])
    async def wf(ctx: WorkflowExecutionContext[Any]) -> None:
        raise AssertionError("must not run")

    with pytest.raises(SecretsNotFoundError, match="MISSING_A, MISSING_B"):
        wf.run()
    with Store() as store:
        assert store.list_runs() == []


# ---------------------------------------------------------- output storage


def test_output_storage_keeps_a_reference_in_history(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path / "outputs")
    big = {"rows": [{"id": i, "name": f"row-{i}"} for i in range(50)]}

    @task.with_options(output_storage=storage)
    def produce() -> dict[str, Any]:
        return big

    @task
    def count(data: dict[str, Any]) -> int:
        return len(data["rows"])

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        data = await produce()
        first = await pause("look")
        return {"count": await count(data), "first": data["rows"][0], "resumed": first}

    paused = wf.run()
    assert paused.is_paused
    ctx = wf.resume(paused.execution_id, "yes")  # replay reads the stored output back
    assert succeeded(ctx) == {"count": 50, "first": {"id": 0, "name": "row-0"}, "resumed": "yes"}
    [completed] = [
        e.value
        for e in ctx.events
        if e.type == EventType.TASK_COMPLETED and e.source_id == "produce#0"
    ]
    reference = decode(completed, expect(StorageReference))
    assert isinstance(reference, StorageReference)
    assert "row-49" not in json.dumps(completed)
    assert list((tmp_path / "outputs").glob("*.json"))


def test_workflow_output_storage_keeps_a_reference_in_history(tmp_path: Path) -> None:
    @workflow.with_options(output_storage=LocalFileStorage(tmp_path / "wf-out"))
    async def wf(ctx: WorkflowExecutionContext[Any]) -> list[int]:
        return list(range(100))

    ctx = wf.run()
    assert succeeded(ctx) == list(range(100))
    [stored] = values_of(ctx, EventType.WORKFLOW_COMPLETED)
    assert isinstance(decode(stored, expect(StorageReference)), StorageReference)
    assert wf.run(execution_id=ctx.execution_id).output == list(range(100))


# ------------------------------------------------------------------ errors


def test_an_uncaught_task_failure_fails_the_run_with_an_execution_error() -> None:
    @task
    def fails() -> None:
        raise Boom("bad input")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> None:
        await fails()

    ctx = wf.run()
    assert ctx.has_failed and ctx.has_finished and not ctx.has_succeeded
    assert ctx.output["type"] == "ExecutionError"
    assert ctx.output["cause"]["type"] == "Boom"
    assert ctx.output["cause"]["message"] == "bad input"
    [failed] = values_of(ctx, EventType.WORKFLOW_FAILED)
    assert failed["type"] == "ExecutionError"


def test_error_types_are_the_compat_classes() -> None:
    assert issubclass(ExecutionTimeoutError, Exception)
    error = ExecutionError(RetryError(ExecutionTimeoutError("t", 1.5), 3))
    assert chain(error) == ["ExecutionError", "RetryError", "ExecutionTimeoutError"]
    assert "exceeded its timeout of 1.5s" in str(error)


# --------------------------------------------------- tasks outside workflows


def test_tasks_awaited_outside_a_workflow_run_directly() -> None:
    @task
    async def add(a: int, b: int) -> int:
        return a + b

    @task
    def mul(a: int, b: int) -> int:
        return a * b

    async def main() -> Any:
        return [await add(1, 2), await mul(3, 4), await parallel(add(1, 1), mul(2, 2))]

    assert asyncio.run(main()) == [3, 12, [2, 4]]


def test_tasks_awaited_outside_a_workflow_keep_their_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []
    rolled_back: list[int] = []
    release = threading.Event()

    @task.with_options(retry_max_attempts=2, retry_delay=FAST)
    def retried() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise Boom("again")
        return "third"

    @task.with_options(retry_max_attempts=1, retry_delay=FAST)
    def always_fails() -> None:
        raise Boom("never")

    @task.with_options(fallback=lambda x: x * 100)
    def with_fallback(x: int) -> int:
        raise Boom("fallback please")

    @task.with_options(rollback=rolled_back.append)
    def with_rollback(x: int) -> int:
        raise Boom("roll it back")

    @task.with_options(timeout=0.1)
    def too_slow() -> None:
        release.wait(GUARD)

    @task.with_options(secret_requests=["API_KEY"])
    def secretive(secrets: dict[str, str] | None = None) -> int:
        assert secrets is not None
        return len(secrets["API_KEY"])

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"retried": await retried()}
        for name, call in {
            "always_fails": always_fails(),
            "with_rollback": with_rollback(4),
            "too_slow": too_slow(),
            "secretive_missing": secretive(),
        }.items():
            with pytest.raises(ExecutionError) as caught:
                await call
            out[name] = chain(caught.value)
        out["with_fallback"] = await with_fallback(2)
        monkeypatch.setenv("FLUX_SECRET_API_KEY", "abcd")
        out["secretive"] = await secretive()
        return out

    try:
        result = asyncio.run(main())
    finally:
        release.set()
    assert result == {
        "retried": "third",
        "always_fails": ["ExecutionError", "RetryError", "Boom"],
        "with_rollback": ["ExecutionError", "Boom"],
        "too_slow": ["ExecutionError", "ExecutionTimeoutError"],
        "secretive_missing": ["ExecutionError", "TaskError"],
        "with_fallback": 200,
        "secretive": 4,
    }
    assert len(attempts) == 3
    assert rolled_back == [4]


# ----------------------------------------------------------------- parallel


def test_parallel_runs_concurrently_and_returns_results_in_input_order() -> None:
    done = {i: asyncio.Event() for i in range(4)}

    @task
    async def step(i: int) -> int:
        # Each call finishes only after the next one: completion order is 3, 2, 1, 0.
        # (Async bodies without a timeout run on the executor's loop, so a call's
        # outcome is recorded before the call waiting for it wakes up.)
        if i < 3:
            await asyncio.wait_for(done[i + 1].wait(), GUARD)
        done[i].set()
        return i * i

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> list[int]:
        return await parallel(*(step(i) for i in range(4)))

    ctx = wf.run()
    assert succeeded(ctx) == [0, 1, 4, 9]
    completed = [e.source_id for e in ctx.events if e.type == EventType.TASK_COMPLETED]
    assert completed == ["step#3", "step#2", "step#1", "step#0"]


def test_parallel_max_concurrent_bounds_the_calls_in_flight() -> None:
    lock = threading.Lock()
    active = [0]
    peak = [0]
    pair = threading.Barrier(2, timeout=GUARD)

    @task
    def work(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        pair.wait()  # two calls must be in flight together, or this fails
        with lock:
            active[0] -= 1
        return i

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> list[int]:
        return await parallel(*(work(i) for i in range(6)), max_concurrent=2)

    assert succeeded(wf.run()) == list(range(6))
    assert peak[0] == 2


def test_parallel_raise_on_error_cancels_the_rest_and_raises_the_first_failure() -> None:
    rolled_back: list[str] = []
    cancelled: list[str] = []

    @task
    def fails_fast() -> None:
        raise Boom("first failure")

    @task.with_options(rollback=lambda name: rolled_back.append(name))
    async def waits(name: str) -> str:
        try:
            await asyncio.sleep(GUARD * 3)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return describe(await catch(parallel(waits("a"), fails_fast(), waits("b"))))

    ctx = wf.run()
    result = succeeded(ctx)
    assert result["chain"] == ["ExecutionError", "Boom"]
    assert sorted(cancelled) == ["a", "b"]
    assert sorted(rolled_back) == ["a", "b"]
    for call_id in ("waits#0", "waits#1"):
        assert types_of(ctx, call_id)[-1] == EventType.TASK_CANCELLED


def test_parallel_without_raise_on_error_gives_none_for_failed_slots() -> None:
    @task
    def maybe(i: int) -> int:
        if i % 2:
            raise Boom(f"odd {i}")
        return i

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> list[int | None]:
        return await parallel(*(maybe(i) for i in range(5)), raise_on_error=False)

    assert succeeded(wf.run()) == [0, None, 2, None, 4]


def test_parallel_of_nothing_is_an_empty_list() -> None:
    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> list[Any]:
        return await parallel()

    assert succeeded(wf.run()) == []


# ------------------------------------------------------- pipeline and map


def test_pipeline_feeds_each_task_the_previous_result() -> None:
    @task
    def parse(text: str) -> list[int]:
        return [int(p) for p in text.split(",")]

    @task
    async def total(values: list[int]) -> int:
        return sum(values)

    @task
    def label(n: int) -> str:
        return f"total={n}"

    @workflow
    async def wf(ctx: WorkflowExecutionContext[str]) -> str:
        return await pipeline(parse, total, label, input=ctx.input)

    ctx = wf.run("1,2,3")
    assert succeeded(ctx) == "total=6"
    started = [e.source_id for e in ctx.events if e.type == EventType.TASK_STARTED]
    assert started == ["parse#0", "total#0", "label#0"]


def test_map_makes_one_call_per_item_with_results_in_item_order() -> None:
    gate = threading.Barrier(3, timeout=GUARD)

    @task
    def square(n: int) -> int:
        gate.wait()  # all three calls run at the same time
        return n * n

    @workflow
    async def wf(ctx: WorkflowExecutionContext[list[int]]) -> list[int]:
        return await square.map(ctx.input)

    ctx = wf.run([3, 1, 2])
    assert succeeded(ctx) == [9, 1, 4]
    started = [e.value["args"] for e in ctx.events if e.type == EventType.TASK_STARTED]
    assert started == [[3], [1], [2]]


# ------------------------------------------------------------------ Graph


def test_graph_passes_outputs_along_edges_and_merges_several_predecessors() -> None:
    @task
    def split(text: str) -> list[str]:
        return text.split()

    @task
    def count(words: list[str]) -> int:
        return len(words)

    @task
    def longest(words: list[str]) -> str:
        return max(words, key=len)

    @task
    def report(parts: dict[str, Any]) -> str:
        return f"{parts['count']} words, longest {parts['longest']!r}"

    graph = (
        Graph("words")
        .add_node("split", split)
        .add_node("count", count)
        .add_node("longest", longest)
        .add_node("report", report)
        .add_edge("split", "count")
        .add_edge("split", "longest")
        .add_edge("count", "report")
        .add_edge("longest", "report")
        .start_with("split")
        .end_with("report")
    )

    @workflow
    async def wf(ctx: WorkflowExecutionContext[str]) -> str:
        return await graph(ctx.input)

    assert succeeded(wf.run("a quick brown fox")) == "4 words, longest 'quick'"


def test_graph_runs_independent_nodes_concurrently() -> None:
    both = threading.Barrier(2, timeout=GUARD)  # breaks unless left and right overlap

    @task
    def left(x: int) -> int:
        both.wait()
        return x + 1

    @task
    def right(x: int) -> int:
        both.wait()
        return x + 2

    graph = (
        Graph("diamond")
        .add_node("start", lambda x: x)
        .add_node("left", left)
        .add_node("right", right)
        .add_edge("start", "left")
        .add_edge("start", "right")
        .start_with("start")
        .end_with("left")
        .end_with("right")
    )

    @workflow
    async def wf(ctx: WorkflowExecutionContext[int]) -> Any:
        return await graph(ctx.input)

    assert succeeded(wf.run(10)) == {"left": 11, "right": 12}


def test_graph_skips_nodes_with_unsatisfied_edges_and_skips_propagate() -> None:
    ran: list[str] = []

    def node(name: str) -> Any:
        def action(value: Any) -> Any:
            ran.append(name)
            return f"{name}({value})"

        return action

    async def is_big(value: int) -> bool:  # an async condition
        return value > 100

    graph = (
        Graph("branches")
        .add_node("a", lambda x: x)
        .add_node("big", node("big"))
        .add_node("after_big", node("after_big"))
        .add_node("small", node("small"))
        .add_node("join", node("join"))
        .add_edge("a", "big", condition=is_big)
        .add_edge("big", "after_big")
        .add_edge("a", "small", condition=lambda v: v <= 100)
        .add_edge("after_big", "join")
        .add_edge("small", "join")
        .start_with("a")
        .end_with("after_big")
        .end_with("small")
        .end_with("join")
    )

    @workflow
    async def wf(ctx: WorkflowExecutionContext[int]) -> Any:
        return await graph(ctx.input)

    # "join" needs both predecessors; "after_big" was skipped, so "join" is skipped too.
    assert succeeded(wf.run(5)) == "small(5)"
    assert ran == ["small"]
    ran.clear()
    assert succeeded(wf.run(500)) == "after_big(big(500))"
    assert ran == ["big", "after_big"]


def test_graph_result_is_a_dict_for_several_ends_and_none_when_no_end_ran() -> None:
    graph = (
        Graph("ends")
        .add_node("a", lambda x: x)
        .add_node("b", lambda x: x * 2)
        .add_node("c", lambda x: x * 3)
        .add_edge("a", "b", condition=lambda x: x > 0)
        .add_edge("a", "c", condition=lambda x: x > 0)
        .start_with("a")
        .end_with("b")
        .end_with("c")
    )

    @workflow
    async def wf(ctx: WorkflowExecutionContext[int]) -> Any:
        return await graph(ctx.input)

    assert succeeded(wf.run(2)) == {"b": 4, "c": 6}
    assert succeeded(wf.run(0)) is None


def test_an_invalid_graph_fails_when_called() -> None:
    graph = Graph("broken").add_node("a", lambda x: x).add_edge("a", "ghost").start_with("a")

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        try:
            await graph(1)
        except ValueError as error:
            return str(error)

    message = succeeded(wf.run())
    assert "unknown node 'ghost'" in message
    assert "no end node" in message


# --------------------------------------------------------------- built-ins


@workflow
async def draws(ctx: WorkflowExecutionContext[Any]) -> dict[str, Any]:
    values = {
        "now": await now(),
        "uuid": await uuid4(),
        "choice": await choice(["red", "green", "blue"]),
        "randint": await randint(1, 1_000_000),
        "randrange": await randrange(0, 1_000_000, 7),
    }
    values["resumed"] = await pause("after_draws", output=values)
    return values


def test_builtins_are_recorded_once_and_replayed() -> None:
    before = dt.datetime.now(dt.UTC)
    paused = draws.run()
    assert paused.is_paused
    recorded = {
        e.name: decode(e.value)
        for e in paused.events
        if e.type == EventType.TASK_COMPLETED and "#" in e.source_id
    }
    assert set(recorded) == {"now", "uuid4", "choice", "randint", "randrange"}
    when = recorded["now"]
    assert when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)
    assert before <= when <= dt.datetime.now(dt.UTC)
    assert isinstance(recorded["uuid4"], uuid.UUID) and recorded["uuid4"].version == 4
    assert recorded["choice"] in range(3)  # the index into the options
    assert 1 <= recorded["randint"] <= 1_000_000
    assert recorded["randrange"] % 7 == 0

    ctx = draws.resume(paused.execution_id, "go")
    output = succeeded(ctx)
    assert output["now"] == recorded["now"]
    assert output["uuid"] == recorded["uuid4"]
    assert output["choice"] == ["red", "green", "blue"][recorded["choice"]]
    assert output["randint"] == recorded["randint"]
    assert output["randrange"] == recorded["randrange"]
    assert output["resumed"] == "go"
    builtin_starts = [
        e for e in ctx.events if e.type == EventType.TASK_STARTED and e.name == "randint"
    ]
    assert len(builtin_starts) == 1
    # Running the finished run again replays nothing and draws nothing.
    again = draws.run(execution_id=paused.execution_id)
    assert [e.to_dict() for e in again.events] == [e.to_dict() for e in ctx.events]


def test_builtins_outside_a_workflow_just_compute() -> None:
    async def main() -> Any:
        return await now(), await randint(3, 3), await choice("x"), await randrange(5, 6)

    moment, number, picked, ranged = asyncio.run(main())
    assert moment.tzinfo is not None
    assert (number, picked, ranged) == (3, "x", 5)


def test_sleep_accepts_a_timedelta_or_seconds_and_rejects_negative_durations() -> None:
    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        await sleep(dt.timedelta(milliseconds=20))
        await sleep(0.02)
        try:
            await sleep(-1)
        except ValueError as error:
            return str(error)

    ctx = wf.run()
    assert "non-negative" in succeeded(ctx)
    timers = [e for e in ctx.events if e.type == EventType.TASK_STARTED and e.name == "sleep"]
    assert [t.value["seconds"] for t in timers] == [0.02, 0.02]
    for timer in timers:
        until = dt.datetime.fromisoformat(timer.value["until"])
        assert until - dt.timedelta(seconds=0.02) <= timer.time
        [woke] = [e for e in ctx.events if e.source_id == timer.source_id and e is not timer]
        assert woke.type == EventType.TASK_COMPLETED
        assert woke.time >= until  # never early


@workflow
async def long_sleeper(ctx: WorkflowExecutionContext[Any]) -> str:
    await sleep(dt.timedelta(hours=1))
    return "woke up"


def test_sleep_is_a_durable_timer_that_counts_from_when_it_began() -> None:
    # A run that began its one-hour sleep an hour ago (and then lost its process)
    # wakes up at once when it is continued: the timer is in history, not in memory.
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1, seconds=1)
    with Store() as store:
        executor = LocalExecutor(store, clock=lambda: an_hour_ago)
        run_id = executor.create_run(long_sleeper, None, source_of(long_sleeper))
        timer = ExecutionEvent(
            EventType.TASK_STARTED,
            "sleep#0",
            "sleep",
            an_hour_ago,
            {"until": (an_hour_ago + dt.timedelta(hours=1)).isoformat(), "seconds": 3600.0},
            2,
        )
        store.append(run_id, [timer], ExecutionState.RUNNING)
    ctx = long_sleeper.run(execution_id=run_id)
    assert succeeded(ctx) == "woke up"
    assert types_of(ctx, "sleep#0") == [EventType.TASK_STARTED, EventType.TASK_COMPLETED]


# ----------------------------------------------------------- pause/resume


@workflow
async def two_approvals(ctx: WorkflowExecutionContext[str]) -> dict[str, Any]:
    first = await pause("first_approval", output=f"please approve {ctx.input}")
    second = await pause("second_approval")
    return {"first": first, "second": second}


def test_pause_stops_the_run_and_resume_returns_the_input() -> None:
    ctx = two_approvals.run("invoice-7")
    assert ctx.is_paused and ctx.state == ExecutionState.PAUSED
    assert not ctx.has_finished
    [paused] = [e for e in ctx.events if e.type == EventType.TASK_PAUSED]
    assert paused.name == "first_approval"
    assert decode(paused.value["output"]) == "please approve invoice-7"
    assert ctx.events[-1].type == EventType.WORKFLOW_PAUSED

    ctx = two_approvals.resume(ctx.execution_id, {"by": "alice", "ok": True})
    assert ctx.is_paused
    ctx = two_approvals.resume(ctx.execution_id)  # no input: pause returns None
    assert succeeded(ctx) == {"first": {"by": "alice", "ok": True}, "second": None}
    assert len(values_of(ctx, EventType.WORKFLOW_RESUMED)) == 2
    assert len(values_of(ctx, EventType.TASK_RESUMED)) == 2


def test_resuming_a_run_that_is_not_paused_is_an_error() -> None:
    @workflow
    async def quick(ctx: WorkflowExecutionContext[Any]) -> int:
        return 1

    ctx = quick.run()
    with pytest.raises(runs.ResumeError, match="already finished"):
        quick.resume(ctx.execution_id, "late")
    with pytest.raises(LookupError):
        quick.resume("no-such-run", "x")


def test_resuming_at_another_pause_name_is_an_error() -> None:
    ctx = two_approvals.run("x")
    with Store() as store:
        with pytest.raises(PauseMismatchError, match="first_approval"):
            runs.check_resumable(store, ctx.execution_id, "second_approval")
        assert runs.check_resumable(store, ctx.execution_id, "first_approval") is True
    assert two_approvals.run(execution_id=ctx.execution_id).is_paused


def test_pause_outside_a_workflow_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a workflow"):
        asyncio.run(pause("nowhere"))


# -------------------------------------------------------------- durability

_variant = {"arg": 1}


@task
def remember(x: int) -> int:
    return x


@workflow
async def changes_between_runs(ctx: WorkflowExecutionContext[Any]) -> Any:
    first = await remember(_variant["arg"])
    await pause("wait")
    return first


def test_completed_tasks_are_not_run_again_on_resume() -> None:
    runs_of: list[int] = []

    @task
    def counted(x: int) -> int:
        runs_of.append(x)
        return x

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> int:
        a = await counted(1)
        await pause("p")
        return a + await counted(2)

    ctx = wf.run()
    ctx = wf.resume(ctx.execution_id, None)
    assert succeeded(ctx) == 3
    assert runs_of == [1, 2]


def test_a_replay_that_diverges_fails_the_run_with_a_non_determinism_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = changes_between_runs.run()
    assert ctx.is_paused
    monkeypatch.setitem(_variant, "arg", 2)  # the workflow now calls remember(2)
    ctx = changes_between_runs.resume(ctx.execution_id, None)
    assert ctx.has_failed
    assert ctx.output["type"] == NonDeterminismError.__name__
    assert "remember#0" in ctx.output["message"]
    assert "other arguments" in ctx.output["message"]


# ------------------------------------------------------------------- codec


@task
def echo(value: Any) -> Any:
    return value


@task
def inspect_types(value: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in value.items()}


VALUES: dict[str, Any] = {
    "datetime": dt.datetime(2024, 5, 17, 12, 30, 1, 250, tzinfo=dt.UTC),
    "naive": dt.datetime(2024, 5, 17, 12, 30),
    "date": dt.date(2024, 2, 29),
    "timedelta": dt.timedelta(days=2, seconds=5, microseconds=7),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("12.3400"),
    "bytes": b"\x00\xffbinary",
    "tuple": (1, "two", (3.0, None)),
    "dataclass": Point(1, 2),
    "pydantic": Invoice(number="A-1", amount=Decimal("9.99"), issued=dt.date(2024, 1, 2)),
    "nested": {"list": [Point(0, 0), (1, 2)], "int_keys": {1: "one", 2: "two"}},
    "json": {"s": "é", "i": 1, "f": 1.5, "b": True, "n": None},
}


def test_values_round_trip_across_a_task_boundary() -> None:
    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return {
            "back": await echo(ctx.input),
            "types": await inspect_types(ctx.input),
            "resumed": await pause("more", output=ctx.input),
        }

    ctx = wf.run(VALUES)
    assert ctx.input == VALUES
    ctx = wf.resume(ctx.execution_id, VALUES)
    output = succeeded(ctx)
    assert output["back"] == VALUES
    assert output["resumed"] == VALUES
    assert output["types"] == {k: type(v).__name__ for k, v in VALUES.items()}
    assert type(output["back"]["nested"]["list"][1]) is tuple
    assert wf.run(execution_id=ctx.execution_id).output == output
    json.loads(ctx.to_json())


def test_tasks_get_their_arguments_as_they_cross_the_boundary() -> None:
    @task
    def mutate(items: list[int], blob: bytes) -> str:
        items.append(99)  # changes the task's copy only, as in a pod of its own
        return type(blob).__name__

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        items = [1, 2]
        kind = await mutate(items, bytearray(b"ab"))
        return {"items": items, "kind": kind}

    assert succeeded(wf.run()) == {"items": [1, 2], "kind": "bytes"}


def test_an_unencodable_output_fails_that_task_and_history_stays_readable() -> None:
    @task
    def make_opaque() -> Opaque:
        return Opaque()

    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        before = await echo("fine")
        failure = describe(await catch(make_opaque()))
        return {"before": before, "failure": failure}

    ctx = wf.run()
    output = succeeded(ctx)
    assert output["before"] == "fine"
    assert output["failure"]["chain"] == ["ExecutionError", "CodecError"]
    assert "make_opaque" in output["failure"]["message"]
    assert "Opaque" in output["failure"]["message"]
    stored = wf.run(execution_id=ctx.execution_id)
    assert stored.output == output
    assert json.loads(stored.to_json())["state"] == "COMPLETED"


def test_an_unencodable_task_argument_is_reported_naming_the_task_and_type() -> None:
    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        try:
            await echo(Opaque())
        except CodecError as error:
            return str(error)

    message = succeeded(wf.run())
    assert "echo" in message and "Opaque" in message


def test_an_unencodable_workflow_output_fails_the_run_readably() -> None:
    @workflow
    async def wf(ctx: WorkflowExecutionContext[Any]) -> Any:
        return Opaque()

    ctx = wf.run()
    assert ctx.has_failed
    assert ctx.output["type"] == "CodecError"
    assert "Opaque" in ctx.output["message"]
    json.loads(ctx.to_json())


# ----------------------------------------------------------------- context


def test_the_context_api() -> None:
    seen: dict[str, Any] = {}

    @workflow.with_options(name="context_probe")
    async def wf(ctx: WorkflowExecutionContext[dict[str, int]]) -> int:
        seen.update(
            input=ctx.input,
            execution_id=ctx.execution_id,
            workflow_name=ctx.workflow_name,
            has_started=ctx.has_started,
            has_finished=ctx.has_finished,
            state=ctx.state,
        )
        return ctx.input["n"] + 1

    ctx = wf.run({"n": 41})
    assert ExecutionContext is WorkflowExecutionContext
    assert isinstance(ctx, ExecutionContext)
    assert seen == {
        "input": {"n": 41},
        "execution_id": ctx.execution_id,
        "workflow_name": "context_probe",
        "has_started": True,
        "has_finished": False,
        "state": ExecutionState.RUNNING,
    }
    assert (ctx.input, ctx.output, ctx.workflow_name) == ({"n": 41}, 42, "context_probe")
    assert ctx.state == ExecutionState.COMPLETED
    flags = (ctx.has_started, ctx.has_finished, ctx.has_succeeded, ctx.has_failed, ctx.is_paused)
    assert flags == (True, True, True, False, False)
    assert [e.type for e in ctx.events] == [
        EventType.WORKFLOW_STARTED,
        EventType.WORKFLOW_COMPLETED,
    ]
    data = json.loads(ctx.to_json())
    assert data["execution_id"] == ctx.execution_id
    assert data["workflow_name"] == "context_probe"
    assert data["state"] == "COMPLETED"
    assert data["input"] == {"n": 41} and data["output"] == 42
    assert [e["type"] for e in data["events"]] == ["WORKFLOW_STARTED", "WORKFLOW_COMPLETED"]
    stored = wf.run(execution_id=ctx.execution_id)
    assert json.loads(stored.to_json()) == data


def test_context_flags_of_paused_and_failed_runs() -> None:
    @workflow
    async def fails(ctx: WorkflowExecutionContext[Any]) -> None:
        raise Boom("in the workflow itself")

    failed = fails.run()
    flags = (
        failed.has_started,
        failed.has_finished,
        failed.has_succeeded,
        failed.has_failed,
        failed.is_paused,
    )
    assert flags == (True, True, False, True, False)
    assert failed.output["type"] == "Boom"
    paused = two_approvals.run("y")
    flags = (
        paused.has_started,
        paused.has_finished,
        paused.has_succeeded,
        paused.has_failed,
        paused.is_paused,
    )
    assert flags == (True, False, False, False, True)


# ------------------------------------------------------ imports and names


def test_compat_imports() -> None:
    import flux
    import flux.tasks
    from flux.task import task as task_from_module
    from flux.workflow import workflow as workflow_from_module

    assert task_from_module is task
    assert workflow_from_module is workflow
    for name in ("task", "workflow", "ExecutionContext", "WorkflowExecutionContext"):
        assert hasattr(flux, name), name
    for name in (
        "parallel",
        "pipeline",
        "Graph",
        "now",
        "sleep",
        "choice",
        "randint",
        "randrange",
        "uuid4",
        "pause",
    ):
        assert callable(getattr(flux.tasks, name)), name


def test_event_names() -> None:
    contract = [
        "WORKFLOW_STARTED",
        "WORKFLOW_COMPLETED",
        "WORKFLOW_FAILED",
        "WORKFLOW_PAUSED",
        "WORKFLOW_RESUMED",
        "WORKFLOW_CANCELLED",
        "TASK_STARTED",
        "TASK_COMPLETED",
        "TASK_FAILED",
        "TASK_RETRY_STARTED",
        "TASK_RETRY_COMPLETED",
        "TASK_RETRY_FAILED",
        "TASK_FALLBACK_STARTED",
        "TASK_FALLBACK_COMPLETED",
        "TASK_FALLBACK_FAILED",
        "TASK_ROLLBACK_STARTED",
        "TASK_ROLLBACK_COMPLETED",
        "TASK_ROLLBACK_FAILED",
        "TASK_PAUSED",
        "TASK_RESUMED",
    ]
    for name in contract:
        assert EventType[name].value == name
    assert set(EventType.__members__) - set(contract) == {"TASK_CANCELLED"}
