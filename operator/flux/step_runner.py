"""Running one step of a task call's user code: an attempt, a fallback or a rollback.

Both executors run user code through this module: the embedded executor with
:func:`run_step` on its event loop (``flux.local.calls``), a task pod with
:func:`run_encoded_step` in its main thread (``flux.runtime.task``). A step is
always run the same way:

* **Which function.** The task's body for an attempt, its ``fallback`` or
  ``rollback`` for those steps (:func:`step_function`).
* **Secrets.** The values a task requested reach its *attempts* only, as the
  ``secrets`` keyword argument; on the task's host they are the
  ``FLUX_SECRET_<NAME>`` variables (:func:`secret_env_name`, with which the
  operator also names a task pod's variables).
* **Deadline.** Plain functions run in a worker thread; with a timeout, a body
  still running at its deadline fails the step with
  :class:`~flux.errors.ExecutionTimeoutError` and is abandoned (a thread cannot
  be killed): its late result is discarded. The worker threads are daemons, so
  an abandoned body never keeps the process alive.
* **Values.** A value is encoded as history keeps it
  (:func:`~flux.engine.values.store_value`): one that cannot be fails the step
  like an exception does. A rollback's value is not kept.
* **Errors.** An exception becomes an :class:`~flux.engine.failures.ErrorInfo`.

Where the executors differ, it is for a reason of where the code runs:

* The embedded executor runs calls in the process that made them: arguments are
  live objects and secrets are resolved once per call (from its secret store
  too) before any step. A pod receives its arguments encoded and reads its
  secrets from its environment at each attempt.
* The embedded executor's process runs other calls and runs, so user code
  cannot end it: ``sys.exit``, ``KeyboardInterrupt`` and ``GeneratorExit``
  become a :class:`~flux.errors.TaskExitError`. A pod *is* its step: the exit
  ends the pod, whose exit code the operator reads as it reads any crash, and a
  batch pod isolates it as a failure of that item (:mod:`flux.runtime.task`).
* Async bodies without a deadline run on the embedded executor's loop, and
  plain ones without a deadline in a pod's main thread (a pod has nothing else
  to run), where user code may install signal handlers as in any program.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import inspect
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flux.engine import values
from flux.engine.failures import ErrorInfo, error_info
from flux.engine.policy import Step
from flux.errors import CodecError, ExecutionTimeoutError, SecretsNotFoundError, TaskExitError
from flux.task import SECRETS_ARGUMENT, Task

# asyncio is imported where a body needs it, not here: a task pod imports this
# module for every step, most bodies are plain functions, and asyncio would be
# a tenth of the pod's start-up imports (issue 17).

SECRET_ENV_PREFIX = "FLUX_SECRET_"

# What user code may raise to try to end the process instead of failing the task.
_PROCESS_EXITS = (SystemExit, KeyboardInterrupt, GeneratorExit)


@dataclass(frozen=True)
class StepCall:
    """Which step of which task call is run."""

    task: Task[..., Any]
    step: Step
    call_id: str  # the key an output storage keeps the value under
    name: str  # the call's name, as errors give it

    @property
    def function(self) -> Callable[..., Any]:
        """The user function the step calls; ValueError when the task has none."""
        return step_function(self.task, self.step)

    @property
    def takes_secrets(self) -> bool:
        """Only attempts get the task's secrets: a fallback or rollback runs without."""
        return self.step == Step.ATTEMPT


@dataclass(frozen=True)
class StepOutcome:
    """How a step ended: its value as history keeps it, or the error it failed with."""

    value: Any = None
    error: ErrorInfo | None = None

    @property
    def completed(self) -> bool:
        return self.error is None


# ------------------------------------------------------------------ secrets


def secret_env_name(name: str) -> str:
    """The environment variable that gives secret ``name`` to the code of a task."""
    return SECRET_ENV_PREFIX + name


def environment_secret(name: str) -> str | None:
    """The value of secret ``name`` in this process's environment, if it is there."""
    return os.environ.get(secret_env_name(name))


def environment_secrets(names: Iterable[str], where: str) -> dict[str, str]:
    """The secrets of ``names`` from this process's environment; SecretsNotFoundError
    (saying ``where`` they were requested) when any is missing."""
    wanted = list(names)
    found = {n: v for n in wanted if (v := environment_secret(n)) is not None}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SecretsNotFoundError(missing, where)
    return found


def environment_secret_values() -> list[str]:
    """Every ``FLUX_SECRET_*`` value of this process: code running here can read
    any of them, so all are masked in what it records."""
    # Values read for the matching names only: decoding every value of a large
    # environment showed up in the cost of each run (issue 17).
    found = (os.environ.get(name) for name in os.environ if name.startswith(SECRET_ENV_PREFIX))
    return [value for value in found if value is not None]


# -------------------------------------------------------------------- steps


def step_function(task: Task[..., Any], step: Step) -> Callable[..., Any]:
    """The user function ``step`` of ``task`` calls; ValueError when it has none."""
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
    raise ValueError(f"{step!r} is not a step of a task call")


async def run_step(
    call: StepCall,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    timeout: float = 0,
    secrets: Mapping[str, str] | None = None,
) -> StepOutcome:
    """One step with live arguments, on the running loop (the embedded executor)."""
    # A fallback's or rollback's exit names the function that exited, as it always has.
    exit_name = call.name if call.step == Step.ATTEMPT else ""
    try:
        func = call.function
        if call.takes_secrets and secrets is not None:
            kwargs = {**kwargs, SECRETS_ARGUMENT: dict(secrets)}
        value = await call_user_code(func, args, kwargs, timeout=timeout, name=exit_name)
        return _completed(call, value)
    except Exception as exc:
        return StepOutcome(error=error_info(exc))


def run_encoded_step(
    call: StepCall,
    positional: Any,
    keywords: Any,
    *,
    timeout: float = 0,
    secret_names: Iterable[str] = (),
) -> StepOutcome:
    """One step with encoded arguments and secrets from the environment (a task pod).

    Process exits raised by the body propagate: see the module's docstring.
    """
    try:
        args, kwargs = values.decode_arguments(call.task, positional, keywords)
        func = call.function
        requested = list(secret_names)
        if call.takes_secrets and requested:
            kwargs[SECRETS_ARGUMENT] = environment_secrets(requested, f"task {call.name!r}")
        value = _call_blocking(func, args, kwargs, timeout, call.name)
        return _completed(call, value)
    except Exception as exc:
        return StepOutcome(error=error_info(exc))


def _completed(call: StepCall, value: Any) -> StepOutcome:
    if call.step == Step.ROLLBACK:
        return StepOutcome(value=None)
    # A value the store cannot take fails the step: retries and fallback
    # apply as for any failure.
    try:
        stored = values.store_value(call.task.options.output_storage, call.call_id, value)
    except CodecError as exc:
        raise CodecError(
            f"task {call.name!r} returned a value that cannot be stored: {exc}"
        ) from None
    return StepOutcome(value=stored)


# ---------------------------------------------------------------- deadlines


class _DaemonThreadPool:
    """Like ThreadPoolExecutor, but its threads are daemons.

    ThreadPoolExecutor joins its workers at interpreter exit, so one blocked
    body that timed out long ago would hold the process open until it returns.
    """

    def __init__(self, max_workers: int, name: str):
        self._max_workers = max_workers
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._jobs = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._workers = 0
        self.abandoned = 0  # jobs given up at their deadline; they may still run

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, job))
        if self._idle.acquire(blocking=False):
            return future  # an idle worker takes it
        with self._lock:
            if self._workers < self._max_workers:
                self._workers += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._workers}", daemon=True
                ).start()
        return future

    def _work(self) -> None:
        while True:
            future, job = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    result = job()
                except BaseException as exc:  # handed to whoever waits for it
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, job  # do not keep the last result alive while idle
            self._idle.release()


_POOL = _DaemonThreadPool(max_workers=64, name="flux-task")


def abandoned_bodies() -> int:
    """How many bodies this process gave up at their deadline (they may still run)."""
    return _POOL.abandoned


async def call_user_code(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    timeout: float = 0,
    name: str = "",
) -> Any:
    """``func``'s value, awaited on the running loop; process exits become TaskExitError."""
    import asyncio  # loaded already: this runs on a loop

    name = name or getattr(func, "__name__", "task")
    is_async = inspect.iscoroutinefunction(func)
    if is_async and not timeout:
        try:
            return await func(*args, **kwargs)
        except _PROCESS_EXITS as exc:
            raise TaskExitError.from_exit(name, exc) from None
    # Async bodies with a deadline get a thread and loop of their own: one that
    # blocks must still fail on time.
    job = functools.partial(_call, func, args, kwargs)
    guarded = functools.partial(_guarded, name, _in_fresh_context(job))
    future = asyncio.wrap_future(_POOL.submit(guarded))
    if not timeout:
        return await future
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        future.cancel()
        _POOL.abandoned += 1
        raise ExecutionTimeoutError(name, timeout)
    return future.result()


def _call_blocking(
    func: Callable[..., Any], args: Any, kwargs: Any, timeout: float, name: str
) -> Any:
    """``func``'s value, in this thread, or with a timeout in a worker thread abandoned
    at the deadline. Process exits raised by ``func`` propagate."""
    if not timeout:
        return _call(func, args, kwargs)
    future = _POOL.submit(_in_fresh_context(functools.partial(_call, func, args, kwargs)))
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        if future.done():  # finished as the wait ended: its own error or value
            return future.result()
        future.cancel()
        _POOL.abandoned += 1
        raise ExecutionTimeoutError(name, timeout) from None


def _in_fresh_context(job: Callable[[], Any]) -> Callable[[], Any]:
    # Context variables set by the caller (the engine's current run) are not the body's.
    return functools.partial(contextvars.Context().run, job)


def _guarded(name: str, job: Callable[[], Any]) -> Any:
    # Converted in the worker thread: a GeneratorExit thrown into the awaiting
    # coroutine would close the whole await chain instead of reaching an except.
    try:
        return job()
    except _PROCESS_EXITS as exc:
        raise TaskExitError.from_exit(name, exc) from None


def _call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):  # an async body, or a plain one that returned a coroutine
        import asyncio

        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable
