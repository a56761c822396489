"""Carrying one task call through its policy: attempts, retries, fallback, rollback.

The decisions come from :mod:`flux.engine.policy`; this module performs them
and reports each step to a :class:`CallLog` before taking the next, so a run
killed at any point resumes the call where its history says it stood.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flux.engine.failures import ErrorInfo, error_info, wrap_execution
from flux.engine.policy import (
    Fail,
    RunAttempt,
    RunFallback,
    RunRollback,
    Step,
    TaskPolicy,
    TaskProgress,
    after_attempt_failure,
)
from flux.errors import SecretsNotFoundError
from flux.events import EventType
from flux.step_runner import StepCall, StepOutcome, run_step
from flux.task import Task


class CallLog(Protocol):
    """Where a call's steps go: a run's history, or nowhere for a direct call."""

    def record(self, event_type: EventType, value: Any = None) -> None: ...


SecretResolver = Callable[[tuple[str, ...]], tuple[dict[str, str], list[str]]]


@dataclass(frozen=True)
class CallOutcome:
    event_type: EventType  # TASK_COMPLETED or TASK_FAILED
    value: Any  # encoded output, or the final ErrorInfo


@dataclass
class TaskCallRunner:
    call_id: str
    name: str
    task: Task[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    log: CallLog
    clock: Callable[[], dt.datetime]
    secrets: SecretResolver
    rng: random.Random

    @property
    def policy(self) -> TaskPolicy:
        return TaskPolicy.from_options(self.task.options)

    async def run(self, progress: TaskProgress | None = None) -> CallOutcome:
        progress = progress or TaskProgress(Step.ATTEMPT, 1, None, None)
        # Resolved once per call, before any step: a secret missing here fails
        # the call without using its retries.
        requested = self.task.options.secret_requests
        found: dict[str, str] | None = None
        if requested:
            found, missing = self.secrets(requested)
            if missing:
                error = SecretsNotFoundError(missing, f"task {self.name!r}")
                return CallOutcome(EventType.TASK_FAILED, wrap_execution(error_info(error)))
        match progress.step:
            case Step.FALLBACK:
                assert progress.error is not None
                return await self._fallback(progress.error, announce=False)
            case Step.ROLLBACK:
                assert progress.error is not None
                return await self._rollback(progress.error, announce=False)
        return await self._attempts(progress.attempt, progress.not_before, found)

    async def _attempts(
        self, attempt: int, not_before: dt.datetime | None, secrets: dict[str, str] | None
    ) -> CallOutcome:
        policy = self.policy
        while True:
            if not_before is not None:
                wait = (not_before - self.clock()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            ran = await self._step(Step.ATTEMPT, timeout=policy.timeout, secrets=secrets)
            if ran.error is None:
                return self._completed(ran.value, attempt)
            failure = ran.error
            if attempt > 1:
                self.log.record(EventType.TASK_RETRY_FAILED, {"attempt": attempt, "error": failure})
            decision = after_attempt_failure(
                policy, attempt, failure, self.clock(), self.rng.random()
            )
            match decision:
                case RunAttempt():
                    self.log.record(
                        EventType.TASK_RETRY_STARTED,
                        {
                            "attempt": decision.attempt,
                            "delay": decision.delay,
                            "not_before": decision.not_before.isoformat(),
                            "error": failure,
                        },
                    )
                    attempt, not_before = decision.attempt, decision.not_before
                case RunFallback():
                    return await self._fallback(decision.error)
                case RunRollback():
                    return await self._rollback(decision.error)
                case Fail():
                    return CallOutcome(EventType.TASK_FAILED, wrap_execution(decision.error))

    async def _step(
        self, step: Step, timeout: float = 0, secrets: dict[str, str] | None = None
    ) -> StepOutcome:
        call = StepCall(self.task, step, self.call_id, self.name)
        return await run_step(call, self.args, self.kwargs, timeout=timeout, secrets=secrets)

    def _completed(self, stored: Any, attempt: int) -> CallOutcome:
        if attempt > 1:
            self.log.record(EventType.TASK_RETRY_COMPLETED, {"attempt": attempt})
        return CallOutcome(EventType.TASK_COMPLETED, stored)

    async def _fallback(self, error: ErrorInfo, announce: bool = True) -> CallOutcome:
        fallback = self.task.options.fallback
        assert fallback is not None
        if announce:
            self.log.record(EventType.TASK_FALLBACK_STARTED, {"error": error})
        ran = await self._step(Step.FALLBACK)
        if ran.error is not None:
            self.log.record(EventType.TASK_FALLBACK_FAILED, {"error": ran.error})
            return CallOutcome(EventType.TASK_FAILED, wrap_execution(ran.error))
        self.log.record(EventType.TASK_FALLBACK_COMPLETED)
        return CallOutcome(EventType.TASK_COMPLETED, ran.value)

    async def _rollback(self, error: ErrorInfo, announce: bool = True) -> CallOutcome:
        rollback = self.task.options.rollback
        assert rollback is not None
        if announce:
            self.log.record(EventType.TASK_ROLLBACK_STARTED, {"error": error})
        ran = await self._step(Step.ROLLBACK)
        if ran.error is not None:
            self.log.record(EventType.TASK_ROLLBACK_FAILED, {"error": ran.error})
            return CallOutcome(EventType.TASK_FAILED, wrap_execution(ran.error))
        self.log.record(EventType.TASK_ROLLBACK_COMPLETED)
        return CallOutcome(EventType.TASK_FAILED, wrap_execution(error))

    async def rollback_after_cancel(self) -> None:
        """A cancelled call runs its rollback (when it has one and no fallback)."""
        if self.task.options.rollback is None or self.task.options.fallback is not None:
            return
        cancelled: ErrorInfo = {
            "type": "CancelledError",
            "module": "asyncio",
            "message": "the task was cancelled",
            "kind": "code",
        }
        await self._rollback(cancelled)
