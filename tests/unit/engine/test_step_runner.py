"""One step of user code, as both executors run it (``flux.step_runner``).

The executors' own tests run it end to end (``tests/local``, the task runner's
subprocess tests); these pin what the module promises each of them, and where
the two differ on purpose.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import time
from typing import Any

import pytest

from flux import codec, task
from flux.engine.policy import Step
from flux.step_runner import (
    StepCall,
    StepOutcome,
    abandoned_bodies,
    environment_secret_values,
    run_encoded_step,
    run_step,
    step_function,
)
from flux.storage import OutputStorage


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


def _undo(n: int) -> str:
    return "undone"


def _instead(n: int) -> int:
    return -n


@task.with_options(fallback=_instead, rollback=_undo)
def square(n: int) -> int:
    if n == 13:
        raise ValueError(f"unlucky {n}")
    if n == 99:
        return object()  # type: ignore[return-value]  # cannot be encoded
    if n == 42:
        sys.exit(3)
    return n * n


@task
def plain(n: int) -> int:
    return n


@task
def moved(p: Point) -> Point:
    return Point(p.y, p.x)


@task
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task
def block(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task.with_options(secret_requests=["API_KEY"])
def secretive(n: int, secrets: dict[str, str] | None = None) -> str:
    return f"{n}:{(secrets or {}).get('API_KEY')}"


@task
def times_out() -> None:
    raise TimeoutError("the body's own")


@task
def thread_name() -> str:
    return threading.current_thread().name


def _call(step: Step, t: Any) -> StepCall:
    return StepCall(t, step, f"{t.name}#0", t.name)


def _run(step: Step, t: Any, *args: Any, **options: Any) -> StepOutcome:
    return asyncio.run(run_step(_call(step, t), args, {}, **options))


def _run_encoded(step: Step, t: Any, *args: Any, **options: Any) -> StepOutcome:
    return run_encoded_step(_call(step, t), codec.encode(list(args)), {}, **options)


# ------------------------------------------------------------------ shared


@pytest.mark.parametrize("run", [_run, _run_encoded])
def test_each_step_calls_its_own_function(run: Any) -> None:
    assert run(Step.ATTEMPT, square, 3) == StepOutcome(value=9)
    assert run(Step.FALLBACK, square, 3) == StepOutcome(value=-3)
    # A rollback's value is not kept: the call fails with the error that caused it.
    assert run(Step.ROLLBACK, square, 3) == StepOutcome(value=None)


@pytest.mark.parametrize("run", [_run, _run_encoded])
def test_an_exception_fails_the_step_with_its_error_info(run: Any) -> None:
    ran = run(Step.ATTEMPT, square, 13)
    assert not ran.completed
    assert ran.error == {
        "type": "ValueError",
        "module": "builtins",
        "message": "unlucky 13",
        "kind": "code",
    }


@pytest.mark.parametrize("run", [_run, _run_encoded])
def test_a_value_that_cannot_be_stored_fails_the_step(run: Any) -> None:
    ran = run(Step.ATTEMPT, square, 99)
    assert ran.error is not None
    assert ran.error["type"] == "CodecError"
    assert ran.error["message"].startswith("task 'square' returned a value that cannot be stored")


@pytest.mark.parametrize("run", [_run, _run_encoded])
def test_a_missing_fallback_fails_the_step(run: Any) -> None:
    ran = run(Step.FALLBACK, plain, 1)
    assert ran.error is not None
    assert ran.error["message"] == "task 'plain' has no fallback"
    with pytest.raises(ValueError, match="has no rollback"):
        step_function(plain, Step.ROLLBACK)


@pytest.mark.parametrize("run", [_run, _run_encoded])
def test_a_body_past_its_deadline_fails_on_time_and_is_abandoned(run: Any) -> None:
    before = abandoned_bodies()
    began = time.monotonic()
    ran = run(Step.ATTEMPT, block, 5, timeout=0.2)
    assert time.monotonic() - began < 3
    assert ran.error is not None
    assert ran.error["type"] == "ExecutionTimeoutError"
    assert ran.error["kind"] == "timeout"
    assert abandoned_bodies() == before + 1
    assert run(Step.ATTEMPT, nap, 0.01) == StepOutcome(value=0.01)
    assert run(Step.ATTEMPT, nap, 0.01, timeout=5) == StepOutcome(value=0.01)
    ran = run(Step.ATTEMPT, nap, 5, timeout=0.2)
    assert ran.error is not None and ran.error["type"] == "ExecutionTimeoutError"


def test_the_output_storage_keeps_the_value_under_the_call_id() -> None:
    class Memory(OutputStorage):
        def __init__(self) -> None:
            self.kept: dict[str, Any] = {}

        def store(self, key: str, value: Any) -> Any:
            self.kept[key] = value
            return self.reference(key)

        def retrieve(self, reference: Any) -> Any:
            return self.kept[reference.key]

    storage = Memory()
    kept = task.with_options(output_storage=storage)(plain.func)
    for run in (_run, _run_encoded):
        ran = run(Step.ATTEMPT, kept, 7)
        assert ran.completed and ran.value != 7  # a reference, not the value
        assert storage.kept == {f"{kept.name}#0": 7}
        storage.kept.clear()


def test_secret_values_of_the_environment_are_all_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX_SECRET_ONE", "first-value")
    monkeypatch.setenv("FLUX_SECRET_KEY", "the-store-key")
    monkeypatch.setenv("NOT_A_SECRET", "plain")
    found = environment_secret_values()
    assert {"first-value", "the-store-key"} <= set(found)
    assert "plain" not in found


# -------------------------------------- the embedded executor (live values)


def test_secrets_reach_attempts_only() -> None:
    given = {"API_KEY": "k3y"}
    assert _run(Step.ATTEMPT, secretive, 1, secrets=given).value == "1:k3y"
    assert _run(Step.ATTEMPT, secretive, 1).value == "1:None"


def test_an_exit_in_the_embedded_executor_fails_the_step() -> None:
    ran = _run(Step.ATTEMPT, square, 42)
    assert ran.error is not None
    assert ran.error["type"] == "TaskExitError"
    assert ran.error["message"] == "task 'square' called sys.exit(3)"


# ------------------------------------------ a task pod (encoded, environment)


def test_encoded_arguments_are_decoded_as_the_parameters_declare() -> None:
    ran = _run_encoded(Step.ATTEMPT, moved, Point(1, 2))
    assert ran.value == codec.encode(Point(2, 1))


def test_a_pod_reads_secrets_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLUX_SECRET_API_KEY", raising=False)
    ran = _run_encoded(Step.ATTEMPT, secretive, 1, secret_names=["API_KEY"])
    assert ran.error is not None
    assert ran.error["type"] == "SecretsNotFoundError"
    assert ran.error["message"] == "task 'secretive': missing secret(s): API_KEY"
    monkeypatch.setenv("FLUX_SECRET_API_KEY", "k3y")
    assert _run_encoded(Step.ATTEMPT, secretive, 1, secret_names=["API_KEY"]).value == "1:k3y"
    # A fallback gets no secrets, so a missing one does not fail it.
    monkeypatch.delenv("FLUX_SECRET_API_KEY")
    assert _run_encoded(Step.FALLBACK, square, 2, secret_names=["API_KEY"]).value == -2


def test_an_exit_in_a_pod_ends_it() -> None:
    with pytest.raises(SystemExit):
        _run_encoded(Step.ATTEMPT, square, 42)
    with pytest.raises(SystemExit):
        _run_encoded(Step.ATTEMPT, square, 42, timeout=5)


def test_a_pod_runs_a_body_without_deadline_in_its_own_thread() -> None:
    here = threading.current_thread().name
    assert _run_encoded(Step.ATTEMPT, thread_name).value == here
    assert _run_encoded(Step.ATTEMPT, thread_name, timeout=5).value != here


def test_a_body_raising_timeout_error_itself_is_not_a_deadline() -> None:
    for run in (_run, _run_encoded):
        ran = run(Step.ATTEMPT, times_out, timeout=5)
        assert ran.error is not None
        assert (ran.error["type"], ran.error["message"]) == ("TimeoutError", "the body's own")
