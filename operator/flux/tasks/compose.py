"""Composing task calls: ``parallel`` and ``pipeline``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def parallel(
    *awaitables: Awaitable[Any],
    max_concurrent: int | None = None,
    raise_on_error: bool = True,
) -> list[Any]:
    """Run the awaitables concurrently; results in input order.

    With ``raise_on_error`` the first failure cancels the rest and is raised;
    otherwise a failed slot is ``None``.
    """
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError("max_concurrent must be at least 1")
    limit = asyncio.Semaphore(max_concurrent) if max_concurrent else None

    async def one(awaitable: Awaitable[Any]) -> Any:
        if limit is None:
            return await awaitable
        async with limit:
            return await awaitable

    children = [asyncio.ensure_future(one(a)) for a in awaitables]
    if not children:
        return []
    if raise_on_error:
        try:
            return list(await asyncio.gather(*children))
        except (Exception, asyncio.CancelledError):
            # Not BaseException: a coroutine being closed (GeneratorExit) must not wait.
            for child in children:
                child.cancel()
            # Let the cancelled calls settle so their cancellation is recorded.
            await asyncio.gather(*children, return_exceptions=True)
            raise
    results = await asyncio.gather(*children, return_exceptions=True)
    return [None if isinstance(r, BaseException) else r for r in results]


async def pipeline(*tasks: Callable[[Any], Any], input: Any) -> Any:
    """Call each task with the previous result, starting from ``input``."""
    value = input
    for step in tasks:
        result = step(value)
        value = await result if inspect.isawaitable(result) else result
    return value
