"""A private, deterministic event loop for workflow code.

Workflow code runs on this loop, never on the executor's: the engine runs
every ready callback until none is left, then hands control back. Outcomes
reach the workflow one at a time in history order, so a replay interleaves the
workflow's coroutines exactly as the original run did (the approach of the
Temporal Python SDK). Workflow code cannot read time from this loop: timers go
through ``flux.tasks.sleep``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
from asyncio import events
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class WorkflowTimeError(RuntimeError):
    pass


class DeterministicLoop(asyncio.AbstractEventLoop):
    def __init__(self) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._closed = False
        self._running = False
        self.errors: list[dict[str, Any]] = []

    def run_until_idle(self) -> None:
        """Run every ready callback, including those they schedule, then return."""
        outer = events._get_running_loop()
        events._set_running_loop(self)
        self._running = True
        try:
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            self._running = False
            events._set_running_loop(outer)

    # The subset of AbstractEventLoop that futures, tasks and asyncio primitives use.

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        raise WorkflowTimeError("workflow code must not hand work between threads")

    def call_later(  # type: ignore[override]
        self, delay: float, *args: Any, **kwargs: Any
    ) -> asyncio.TimerHandle:
        raise WorkflowTimeError(
            "workflow code cannot use asyncio timers (asyncio.sleep, wait_for): "
            "use flux.tasks.sleep, or a task timeout"
        )

    def call_at(  # type: ignore[override]
        self, when: float, *args: Any, **kwargs: Any
    ) -> asyncio.TimerHandle:
        return self.call_later(0)

    def time(self) -> float:
        raise WorkflowTimeError("workflow code cannot read the clock: use flux.tasks.now")

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        # Unretrieved exceptions of abandoned workflow tasks end up here; they
        # are not errors of the run, but keep them for debugging.
        self.errors.append(context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)
