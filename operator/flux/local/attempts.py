"""Running user code for one step of a task: an attempt, a fallback or a rollback.

Async bodies run on the executor's loop; plain functions run in worker threads
so they never block it. A deadline fails the attempt on time even when the
body blocks: the body is then abandoned (a thread cannot be killed) and a late
result is discarded. Async bodies with a deadline get a thread and loop of
their own for that reason. The worker threads are daemons, so an abandoned
body never keeps the process alive once the run is over.

User code cannot end the process: ``sys.exit``, ``KeyboardInterrupt`` and
``GeneratorExit`` raised by it become a :class:`TaskExitError`, a task failure
like any other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import queue
import threading
from collections.abc import Callable
from typing import Any

from flux.errors import ExecutionTimeoutError, TaskExitError

# What user code may raise to try to end the process instead of failing the task.
_PROCESS_EXITS = (SystemExit, KeyboardInterrupt, GeneratorExit)


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
                except BaseException as exc:  # handed to the waiting coroutine
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, job  # do not keep the last result alive while idle
            self._idle.release()


_POOL = _DaemonThreadPool(max_workers=64, name="flux-task")


async def call_user_code(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    timeout: float = 0,
    name: str = "",
) -> Any:
    name = name or getattr(func, "__name__", "task")
    is_async = inspect.iscoroutinefunction(func)
    if is_async and not timeout:
        try:
            return await func(*args, **kwargs)
        except _PROCESS_EXITS as exc:
            raise TaskExitError.from_exit(name, exc) from None
    if is_async:
        job: Callable[[], Any] = functools.partial(_run_coroutine, func, args, kwargs)
    else:
        job = functools.partial(_run_plain, func, args, kwargs)
    guarded = functools.partial(_guarded, name, functools.partial(contextvars.Context().run, job))
    future = asyncio.wrap_future(_POOL.submit(guarded))
    if not timeout:
        return await future
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        future.cancel()
        raise ExecutionTimeoutError(name, timeout)
    return future.result()


def _guarded(name: str, job: Callable[[], Any]) -> Any:
    # Converted in the worker thread: a GeneratorExit thrown into the awaiting
    # coroutine would close the whole await chain instead of reaching an except.
    try:
        return job()
    except _PROCESS_EXITS as exc:
        raise TaskExitError.from_exit(name, exc) from None


def _run_plain(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):  # a plain function that returned a coroutine
        return asyncio.run(_await(result))
    return result


def _run_coroutine(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return asyncio.run(func(*args, **kwargs))


async def _await(awaitable: Any) -> Any:
    return await awaitable
