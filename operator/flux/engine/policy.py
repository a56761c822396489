"""The task-policy state machine: retries, backoff, fallback, rollback.

Pure decisions only. Given a task's policy and how its last step ended, say
what happens next and when. Both executors call these functions, and a task's
progress can be rebuilt from its history events at any time, so nothing about
a task in flight lives only in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from flux.engine.failures import ErrorInfo, wrap_retry
from flux.events import EventType, ExecutionEvent
from flux.task import TaskOptions

MAX_RETRY_DELAY = 600.0


@dataclass(frozen=True)
class TaskPolicy:
    retry_max_attempts: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    retry_jitter: float = 0.0
    timeout: float = 0.0
    has_fallback: bool = False
    has_rollback: bool = False

    @classmethod
    def from_options(cls, options: TaskOptions) -> TaskPolicy:
        return cls(
            retry_max_attempts=options.retry_max_attempts,
            retry_delay=float(options.retry_delay),
            retry_backoff=float(options.retry_backoff),
            retry_jitter=float(options.retry_jitter),
            timeout=float(options.timeout),
            has_fallback=options.fallback is not None,
            has_rollback=options.rollback is not None,
        )

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: that deep-copies, and this runs for every task call.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskPolicy:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def max_attempts(self) -> int:
        return 1 + self.retry_max_attempts


def retry_delay(policy: TaskPolicy, retry: int, jitter_factor: float = 1.0) -> float:
    """Seconds before retry number ``retry`` (1-based): delay * backoff**(retry-1), capped."""
    base = policy.retry_delay * policy.retry_backoff ** (retry - 1)
    return min(base * jitter_factor, MAX_RETRY_DELAY)


def jitter_factor(policy: TaskPolicy, unit_random: float) -> float:
    """Map a random number in [0, 1) to a factor in [1 - j, 1 + j]."""
    return 1.0 + policy.retry_jitter * (2.0 * unit_random - 1.0)


class Step(StrEnum):
    """What runs for a task call: an attempt of its body, its fallback or its rollback.

    Both executors record it; on Kubernetes it is also what a task pod runs.
    """

    ATTEMPT = "attempt"
    FALLBACK = "fallback"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class RunAttempt:
    attempt: int
    not_before: dt.datetime
    delay: float = 0.0


@dataclass(frozen=True)
class RunFallback:
    error: ErrorInfo


@dataclass(frozen=True)
class RunRollback:
    error: ErrorInfo


@dataclass(frozen=True)
class Fail:
    error: ErrorInfo


Decision = RunAttempt | RunFallback | RunRollback | Fail


def after_attempt_failure(
    policy: TaskPolicy, attempt: int, error: ErrorInfo, now: dt.datetime, unit_random: float = 0.5
) -> Decision:
    """What follows when attempt number ``attempt`` (1-based) failed with ``error``."""
    if attempt < policy.max_attempts:
        factor = jitter_factor(policy, unit_random) if policy.retry_jitter else 1.0
        delay = retry_delay(policy, attempt, factor)
        return RunAttempt(attempt + 1, now + dt.timedelta(seconds=delay), delay)
    final = wrap_retry(error, attempt) if policy.retry_max_attempts else error
    return after_exhaustion(policy, final)


def after_exhaustion(policy: TaskPolicy, final: ErrorInfo) -> Decision:
    if policy.has_fallback:
        return RunFallback(final)
    if policy.has_rollback:
        return RunRollback(final)
    return Fail(final)


@dataclass(frozen=True)
class TaskProgress:
    """Where one task call stands, rebuilt from its history events."""

    step: Step | None  # None once the call has its outcome
    attempt: int
    not_before: dt.datetime | None
    error: ErrorInfo | None

    @classmethod
    def from_events(cls, events: Iterable[ExecutionEvent]) -> TaskProgress:
        step: Step | None = Step.ATTEMPT
        attempt = 1
        not_before: dt.datetime | None = None
        error: ErrorInfo | None = None
        for event in events:
            value: Any = event.value
            match event.type:
                case EventType.TASK_STARTED:
                    not_before = event.time
                case EventType.TASK_RETRY_STARTED:
                    attempt = int(value["attempt"])
                    not_before = dt.datetime.fromisoformat(value["not_before"])
                    error = value.get("error")
                case EventType.TASK_RETRY_FAILED:
                    error = value.get("error")
                case EventType.TASK_FALLBACK_STARTED:
                    step, error = Step.FALLBACK, value.get("error")
                case EventType.TASK_ROLLBACK_STARTED:
                    step, error = Step.ROLLBACK, value.get("error")
                case (
                    EventType.TASK_COMPLETED
                    | EventType.TASK_FAILED
                    | EventType.TASK_CANCELLED
                    | EventType.TASK_RESUMED
                ):
                    step = None
        return cls(step, attempt, not_before, error)
