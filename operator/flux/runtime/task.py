"""The task runner: one step (attempt, fallback or rollback) of one task call, in a pod.

Policy (retries, timeouts, what runs next) is the operator's: this process
runs the step once, reports its result, and exits 0 on success, 1 on failure.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
from typing import Any

from flux import codec
from flux.engine.failures import error_info
from flux.engine.instance import store_value
from flux.errors import CodecError, SecretsNotFoundError
from flux.k8s.protocol import (
    RESULT_LOG_MARKER,
    TASK_ENV,
    TERMINATION_LOG,
    TERMINATION_MESSAGE_LIMIT,
    Outcome,
    Step,
    TaskResult,
    TaskSpec,
)
from flux.runtime.loading import import_object
from flux.task import SECRETS_ARGUMENT, Task

SECRET_ENV_PREFIX = "FLUX_SECRET_"


def run_step(spec: TaskSpec) -> TaskResult:
    try:
        task = import_object(spec.task)
        if not isinstance(task, Task):
            raise TypeError(f"{spec.task} is not a @task")
        args = tuple(codec.decode(spec.positional))
        kwargs: dict[str, Any] = codec.decode(spec.keywords)
        func = _step_function(task, spec.step)
        if spec.step == Step.ATTEMPT and spec.secrets:
            kwargs[SECRETS_ARGUMENT] = _secrets(spec)
        value = _call(func, args, kwargs)
        if spec.step == Step.ROLLBACK:
            value = None
        try:
            stored = store_value(task.options.output_storage, spec.call_id, value)
        except CodecError as exc:
            raise CodecError(
                f"task {spec.name!r} returned a value that cannot be stored: {exc}"
            ) from None
    except Exception as exc:
        return TaskResult(outcome=Outcome.FAILED, error=dict(error_info(exc)))
    return TaskResult(outcome=Outcome.COMPLETED, value=stored)


def _step_function(task: Task[..., Any], step: Step) -> Any:
    match step:
        case Step.ATTEMPT:
            return task.func
        case Step.FALLBACK:
            if task.options.fallback is None:
                raise ValueError(f"task {task.name!r} has no fallback")
            return task.options.fallback
        case Step.ROLLBACK:
            if task.options.rollback is None:
                raise ValueError(f"task {task.name!r} has no rollback")
            return task.options.rollback


def _secrets(spec: TaskSpec) -> dict[str, str]:
    found = {
        n: os.environ[SECRET_ENV_PREFIX + n]
        for n in spec.secrets
        if SECRET_ENV_PREFIX + n in os.environ
    }
    missing = [n for n in spec.secrets if n not in found]
    if missing:
        raise SecretsNotFoundError(missing, f"task {spec.name!r}")
    return found


def _call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def report(result: TaskResult) -> None:
    """Write the result where the operator reads it; large values go to the log."""
    message = result.to_message()
    if len(message.encode()) > TERMINATION_MESSAGE_LIMIT:
        sys.stdout.write(RESULT_LOG_MARKER + message + "\n")
        sys.stdout.flush()
        message = TaskResult(outcome=result.outcome, in_log=True).to_message()
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as out:
            out.write(message)
    except OSError:  # outside a pod there is no termination log
        sys.stderr.write(message + "\n")


def main() -> int:
    raw = os.environ.get(TASK_ENV)
    if not raw:
        sys.stderr.write(f"{TASK_ENV} is not set: this program runs inside Flux task pods\n")
        return 2
    spec = TaskSpec.model_validate(json.loads(raw))
    result = run_step(spec)
    report(result)
    return 0 if result.outcome == Outcome.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main())
