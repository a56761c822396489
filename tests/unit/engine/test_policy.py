"""The task-policy state machine (flux.engine.policy), driven with a fixed clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from flux import EventType, ExecutionError, ExecutionTimeoutError, RetryError, task
from flux.engine import failures
from flux.engine.failures import FailureKind, error_info, timeout_info, to_exception
from flux.engine.policy import (
    MAX_RETRY_DELAY,
    Fail,
    RunAttempt,
    RunFallback,
    RunRollback,
    Step,
    TaskPolicy,
    TaskProgress,
    after_attempt_failure,
    after_exhaustion,
    jitter_factor,
    retry_delay,
)
from flux.events import ExecutionEvent
from flux.task import TaskOptions

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
BOOM = error_info(ValueError("boom"))


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def test_default_delays_are_1_2_4_seconds() -> None:
    policy = TaskPolicy(retry_max_attempts=3)
    assert [retry_delay(policy, k) for k in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_delay_formula_uses_delay_and_backoff() -> None:
    policy = TaskPolicy(retry_max_attempts=5, retry_delay=0.5, retry_backoff=3)
    assert [retry_delay(policy, k) for k in range(1, 5)] == [0.5, 1.5, 4.5, 13.5]
    constant = TaskPolicy(retry_max_attempts=3, retry_delay=2, retry_backoff=1)
    assert [retry_delay(constant, k) for k in (1, 2, 3)] == [2.0, 2.0, 2.0]


def test_delays_are_capped_at_600_seconds() -> None:
    assert MAX_RETRY_DELAY == 600
    policy = TaskPolicy(retry_max_attempts=20, retry_delay=1, retry_backoff=2)
    delays = [retry_delay(policy, k) for k in range(1, 21)]
    assert delays[:10] == [2.0**i for i in range(10)]  # 1 .. 512
    assert delays[10:] == [600.0] * 10  # 1024 and beyond are capped
    assert retry_delay(TaskPolicy(retry_delay=5000), 1) == 600


def test_the_schedule_of_attempts_with_an_injected_clock() -> None:
    """Attempts that fail at once are retried 1 s, 2 s and 4 s after each failure."""
    policy = TaskPolicy(retry_max_attempts=3)
    now, attempt, schedule = T0, 1, []
    while True:
        decision = after_attempt_failure(policy, attempt, BOOM, now)
        if not isinstance(decision, RunAttempt):
            break
        schedule.append((decision.attempt, decision.not_before, decision.delay))
        attempt, now = decision.attempt, decision.not_before  # the next attempt fails at once
    assert schedule == [
        (2, T0 + seconds(1), 1.0),
        (3, T0 + seconds(3), 2.0),
        (4, T0 + seconds(7), 4.0),
    ]
    assert attempt == 4 == policy.max_attempts
    assert isinstance(decision, Fail)


def test_the_cap_applies_to_the_next_attempt_time() -> None:
    policy = TaskPolicy(retry_max_attempts=30, retry_delay=100)
    decision = after_attempt_failure(policy, 5, BOOM, T0)
    assert decision == RunAttempt(6, T0 + seconds(600), 600.0)


def test_no_retries_means_one_attempt() -> None:
    decision = after_attempt_failure(TaskPolicy(), 1, BOOM, T0)
    assert decision == Fail(BOOM)  # the error itself, not a RetryError


@pytest.mark.parametrize("unit_random", [0.0, 0.1, 0.5, 0.77, 0.999999])
def test_jitter_stays_within_its_bounds(unit_random: float) -> None:
    policy = TaskPolicy(retry_max_attempts=3, retry_delay=10, retry_jitter=0.2)
    factor = jitter_factor(policy, unit_random)
    assert 0.8 <= factor <= 1.2
    decision = after_attempt_failure(policy, 2, BOOM, T0, unit_random)
    assert isinstance(decision, RunAttempt)
    assert 16.0 <= decision.delay <= 24.0  # 20 s +- 20 %
    assert decision.not_before == T0 + seconds(decision.delay)


def test_jitter_extremes_and_cap() -> None:
    policy = TaskPolicy(retry_max_attempts=3, retry_delay=10, retry_jitter=0.5)
    assert jitter_factor(policy, 0.0) == 0.5
    assert jitter_factor(policy, 0.5) == 1.0
    assert jitter_factor(TaskPolicy(), 0.0) == 1.0  # no jitter configured
    capped = TaskPolicy(retry_max_attempts=3, retry_delay=590, retry_jitter=0.5)
    assert after_attempt_failure(capped, 1, BOOM, T0, 0.99).delay == 600.0


def test_without_jitter_the_random_number_is_ignored() -> None:
    policy = TaskPolicy(retry_max_attempts=2)
    delays = {after_attempt_failure(policy, 1, BOOM, T0, r).delay for r in (0.0, 0.3, 0.99)}
    assert delays == {1.0}


@pytest.mark.parametrize(
    ("has_fallback", "has_rollback", "expected"),
    [
        (True, True, RunFallback),
        (True, False, RunFallback),
        (False, True, RunRollback),
        (False, False, Fail),
    ],
)
def test_after_exhaustion_fallback_beats_rollback_beats_failing(
    has_fallback: bool, has_rollback: bool, expected: type
) -> None:
    policy = TaskPolicy(retry_max_attempts=1, has_fallback=has_fallback, has_rollback=has_rollback)
    assert type(after_exhaustion(policy, BOOM)) is expected
    decision = after_attempt_failure(policy, 2, BOOM, T0)
    assert type(decision) is expected
    assert after_attempt_failure(policy, 1, BOOM, T0) == RunAttempt(2, T0 + seconds(1), 1.0)


def test_a_fallback_runs_at_once_when_there_are_no_retries() -> None:
    decision = after_attempt_failure(TaskPolicy(has_fallback=True), 1, BOOM, T0)
    assert decision == RunFallback(BOOM)


def test_exhausted_retries_wrap_the_last_error_in_a_retry_error() -> None:
    policy = TaskPolicy(retry_max_attempts=2)
    last = error_info(ValueError("third failure"))
    decision = after_attempt_failure(policy, 3, last, T0)
    assert isinstance(decision, Fail)
    info = decision.error
    assert info["type"] == "RetryError"
    assert info["attempts"] == 3
    assert info["cause"] == last
    error = to_exception(info)
    assert isinstance(error, RetryError)
    assert error.attempts == 3
    assert isinstance(error.inner_exception, ValueError)
    assert str(error.inner_exception) == "third failure"
    assert "failed after 3 attempts: ValueError: third failure" in str(error)


def test_a_final_error_becomes_an_execution_error_for_the_workflow() -> None:
    wrapped = failures.wrap_execution(failures.wrap_retry(timeout_info("fetch", 2.5), 4))
    assert wrapped["kind"] == FailureKind.TIMEOUT.value
    error = to_exception(wrapped)
    assert isinstance(error, ExecutionError)
    assert isinstance(error.inner_exception, RetryError)
    assert isinstance(error.inner_exception.inner_exception, ExecutionTimeoutError)
    assert "exceeded its timeout of 2.5s" in str(error)
    assert failures.describe(wrapped) == (
        "ExecutionTimeoutError: task 'fetch' exceeded its timeout of 2.5s"
    )


def test_unknown_error_classes_come_back_as_task_errors() -> None:
    info = {"type": "GoneError", "module": "no.such.module", "message": "gone", "kind": "code"}
    error = to_exception(info)  # type: ignore[arg-type]
    assert type(error).__name__ == "TaskError"
    assert str(error) == "GoneError: gone"


def test_policy_from_options_and_back() -> None:
    @task.with_options(
        retry_max_attempts=3,
        retry_delay=0.5,
        retry_backoff=3,
        timeout=9,
        fallback=lambda: None,
    )
    def t() -> None:
        pass

    policy = TaskPolicy.from_options(t.options)
    assert policy == TaskPolicy(3, 0.5, 3.0, 0.0, 9.0, True, False)
    assert policy.max_attempts == 4
    data = policy.to_dict()
    assert TaskPolicy.from_dict({**data, "added_later": 1}) == policy


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"retry_max_attempts": -1}, "retry_max_attempts"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"retry_backoff": 0}, "retry_backoff"),
        ({"timeout": -5}, "timeout"),
        ({"retry_jitter": 1.0}, "retry_jitter"),
        # NaN passes every comparison; infinity is no JSON number (the policy is recorded).
        ({"timeout": float("nan")}, "timeout must be a finite number"),
        ({"retry_delay": float("inf")}, "retry_delay must be a finite number"),
        ({"retry_backoff": float("nan")}, "retry_backoff must be a finite number"),
        ({"retry_jitter": float("nan")}, "retry_jitter must be a finite number"),
        ({"timeout": True}, "timeout must be a finite number"),
        ({"retry_delay": "1"}, "retry_delay must be a finite number"),
    ],
)
def test_invalid_options_are_rejected(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TaskOptions(**options)


# ------------------------------------------------------------ TaskProgress


def event(event_type: EventType, value: Any = None, at: dt.datetime = T0) -> ExecutionEvent:
    return ExecutionEvent(event_type, "fetch#0", "fetch", at, value)


def retry_started(attempt: int, not_before: dt.datetime, error: Any) -> ExecutionEvent:
    value = {"attempt": attempt, "delay": 1.0, "not_before": not_before.isoformat(), "error": error}
    return event(EventType.TASK_RETRY_STARTED, value)


def test_progress_of_a_call_that_has_not_started() -> None:
    assert TaskProgress.from_events([]) == TaskProgress(Step.ATTEMPT, 1, None, None)


def test_progress_of_a_first_attempt() -> None:
    progress = TaskProgress.from_events([event(EventType.TASK_STARTED, at=T0)])
    assert progress == TaskProgress(Step.ATTEMPT, 1, T0, None)


def test_progress_of_a_call_waiting_for_a_retry() -> None:
    second = error_info(KeyError("second"))
    history = [
        event(EventType.TASK_STARTED),
        retry_started(2, T0 + seconds(1), BOOM),
        event(EventType.TASK_RETRY_FAILED, {"attempt": 2, "error": second}),
        retry_started(3, T0 + seconds(3), second),
    ]
    assert TaskProgress.from_events(history) == TaskProgress(
        Step.ATTEMPT, 3, T0 + seconds(3), second
    )
    # After the failure of attempt 2, before its retry was scheduled:
    assert TaskProgress.from_events(history[:3]) == TaskProgress(
        Step.ATTEMPT, 2, T0 + seconds(1), second
    )


def test_progress_in_fallback_and_rollback() -> None:
    final = failures.wrap_retry(BOOM, 2)
    base = [event(EventType.TASK_STARTED), retry_started(2, T0 + seconds(1), BOOM)]
    fallback = TaskProgress.from_events(
        [*base, event(EventType.TASK_FALLBACK_STARTED, {"error": final})]
    )
    assert (fallback.step, fallback.error) == (Step.FALLBACK, final)
    rollback = TaskProgress.from_events(
        [*base, event(EventType.TASK_ROLLBACK_STARTED, {"error": final})]
    )
    assert (rollback.step, rollback.error) == (Step.ROLLBACK, final)


@pytest.mark.parametrize(
    "outcome",
    [
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.TASK_CANCELLED,
    ],
)
def test_progress_of_a_finished_call(outcome: EventType) -> None:
    history = [event(EventType.TASK_STARTED), event(outcome)]
    assert TaskProgress.from_events(history).step is None


def test_progress_agrees_with_the_decisions_that_produced_it() -> None:
    """Record what after_attempt_failure decides; rebuilding from those events gives it back."""
    policy = TaskPolicy(retry_max_attempts=3, retry_delay=2)
    history = [event(EventType.TASK_STARTED, at=T0)]
    now, attempt = T0, 1
    for _ in range(3):
        decision = after_attempt_failure(policy, attempt, BOOM, now)
        assert isinstance(decision, RunAttempt)
        history.append(retry_started(decision.attempt, decision.not_before, BOOM))
        rebuilt = TaskProgress.from_events(history)
        assert (rebuilt.attempt, rebuilt.not_before) == (decision.attempt, decision.not_before)
        attempt, now = decision.attempt, decision.not_before
    assert [e.value["not_before"] for e in history[1:]] == [
        (T0 + seconds(s)).isoformat() for s in (2, 6, 14)
    ]
