"""Running user code for one step of a task: an attempt, a fallback or a rollback.

Async bodies run on the executor's loop; plain functions run in worker threads
so they never block it. A deadline fails the attempt on time even when the
body blocks: the body is then abandoned (a thread cannot be killed) and a late
result is discarded. Async bodies with a deadline get a thread and loop of
their own for that reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any

from flux.errors import ExecutionTimeoutError

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="flux-task")


async def call_user_code(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    timeout: float = 0,
    name: str = "",
) -> Any:
    is_async = inspect.iscoroutinefunction(func)
    if is_async and not timeout:
        return await func(*args, **kwargs)
    if is_async:
        job: Callable[[], Any] = functools.partial(_run_coroutine, func, args, kwargs)
    else:
        job = functools.partial(_run_plain, func, args, kwargs)
    future = asyncio.wrap_future(_POOL.submit(contextvars.Context().run, job))
    if not timeout:
        return await future
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        future.cancel()
        raise ExecutionTimeoutError(name or getattr(func, "__name__", "task"), timeout)
    return future.result()


def _run_plain(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = func(*args, **kwargs)
    if inspect.isawaitable(result):  # a plain function that returned a coroutine
        return asyncio.run(_await(result))
    return result


def _run_coroutine(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return asyncio.run(func(*args, **kwargs))


async def _await(awaitable: Any) -> Any:
    return await awaitable
