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
from flux.engine.instance import store_value
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
from flux.errors import CodecError, SecretsNotFoundError
from flux.events import EventType
from flux.local.attempts import call_user_code
from flux.task import SECRETS_ARGUMENT, Task


class CallLog(Protocol):
    """Where a call's steps go: a run's history, or nowhere for a direct call."""

    def record(self, event_type: EventType, value: Any = None) -> None: ...


SecretResolver = Callable[[tuple[str, ...]], tuple[dict[str, str], list[str]]]


@dataclass(frozen=True)
class Outcome:
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

    async def run(self, progress: TaskProgress | None = None) -> Outcome:
        progress = progress or TaskProgress(Step.ATTEMPT, 1, None, None)
        requested = self.task.options.secret_requests
        kwargs = dict(self.kwargs)
        if requested:
            found, missing = self.secrets(requested)
            if missing:
                error = SecretsNotFoundError(missing, f"task {self.name!r}")
                return Outcome(EventType.TASK_FAILED, wrap_execution(error_info(error)))
            kwargs[SECRETS_ARGUMENT] = found
        match progress.step:
            case Step.FALLBACK:
                assert progress.error is not None
                return await self._fallback(progress.error, announce=False)
            case Step.ROLLBACK:
                assert progress.error is not None
                return await self._rollback(progress.error, announce=False)
        return await self._attempts(progress.attempt, progress.not_before, kwargs)

    async def _attempts(
        self, attempt: int, not_before: dt.datetime | None, kwargs: dict[str, Any]
    ) -> Outcome:
        policy = self.policy
        while True:
            if not_before is not None:
                wait = (not_before - self.clock()).total_seconds()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                value = await call_user_code(
                    self.task.func, self.args, kwargs, timeout=policy.timeout, name=self.name
                )
                # A value the store cannot take fails the attempt: retries and
                # fallback apply as for any failure.
                stored = self._stored(value)
            except Exception as exc:
                failure = error_info(exc)
            else:
                return self._completed(stored, attempt)
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
                    return Outcome(EventType.TASK_FAILED, wrap_execution(decision.error))

    def _stored(self, value: Any) -> Any:
        try:
            return store_value(self.task.options.output_storage, self.call_id, value)
        except CodecError as exc:
            raise CodecError(
                f"task {self.name!r} returned a value that cannot be stored: {exc}"
            ) from None

    def _completed(self, stored: Any, attempt: int) -> Outcome:
        if attempt > 1:
            self.log.record(EventType.TASK_RETRY_COMPLETED, {"attempt": attempt})
        return Outcome(EventType.TASK_COMPLETED, stored)

    async def _fallback(self, error: ErrorInfo, announce: bool = True) -> Outcome:
        fallback = self.task.options.fallback
        assert fallback is not None
        if announce:
            self.log.record(EventType.TASK_FALLBACK_STARTED, {"error": error})
        try:
            value = await call_user_code(fallback, self.args, self.kwargs)
            stored = self._stored(value)
        except Exception as exc:
            failure = error_info(exc)
            self.log.record(EventType.TASK_FALLBACK_FAILED, {"error": failure})
            return Outcome(EventType.TASK_FAILED, wrap_execution(failure))
        self.log.record(EventType.TASK_FALLBACK_COMPLETED)
        return Outcome(EventType.TASK_COMPLETED, stored)

    async def _rollback(self, error: ErrorInfo, announce: bool = True) -> Outcome:
        rollback = self.task.options.rollback
        assert rollback is not None
        if announce:
            self.log.record(EventType.TASK_ROLLBACK_STARTED, {"error": error})
        try:
            await call_user_code(rollback, self.args, self.kwargs)
        except Exception as exc:
            failure = error_info(exc)
            self.log.record(EventType.TASK_ROLLBACK_FAILED, {"error": failure})
            return Outcome(EventType.TASK_FAILED, wrap_execution(failure))
        self.log.record(EventType.TASK_ROLLBACK_COMPLETED)
        return Outcome(EventType.TASK_FAILED, wrap_execution(error))

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
