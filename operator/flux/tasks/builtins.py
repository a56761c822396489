"""Built-ins whose values are recorded once and replayed thereafter."""

from __future__ import annotations

import asyncio
import datetime as dt
import random as _random
import uuid as _uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from flux import _runtime

T = TypeVar("T")


async def _recorded(name: str, compute: _runtime.BuiltinCompute) -> Any:
    runtime = _runtime.current_workflow.get()
    if runtime is None:
        return compute(_random.Random(), dt.datetime.now(dt.UTC))
    return await runtime.builtin(name, compute)


async def now() -> dt.datetime:
    """The current time (timezone-aware UTC)."""
    result: dt.datetime = await _recorded("now", lambda rng, clock: clock)
    return result


async def uuid4() -> _uuid.UUID:
    result: _uuid.UUID = await _recorded(
        "uuid4", lambda rng, clock: _uuid.UUID(int=rng.getrandbits(128), version=4)
    )
    return result


async def choice(options: Sequence[T]) -> T:
    if not options:
        raise IndexError("choice() needs a non-empty sequence")
    index: int = await _recorded("choice", lambda rng, clock: rng.randrange(len(options)))
    return options[index]


async def randint(a: int, b: int) -> int:
    result: int = await _recorded("randint", lambda rng, clock: rng.randint(a, b))
    return result


async def randrange(start: int, stop: int | None = None, step: int = 1) -> int:
    result: int = await _recorded("randrange", lambda rng, clock: rng.randrange(start, stop, step))
    return result


async def sleep(duration: dt.timedelta | float) -> None:
    """A durable timer: a resumed run waits only for the time that is left."""
    seconds = duration.total_seconds() if isinstance(duration, dt.timedelta) else float(duration)
    if seconds < 0:
        raise ValueError(f"sleep() needs a non-negative duration, got {seconds}s")
    runtime = _runtime.current_workflow.get()
    if runtime is None:
        await asyncio.sleep(seconds)
        return
    await runtime.sleep(seconds)


async def pause(name: str, output: Any = None) -> Any:
    """Stop the run until it is resumed; returns the resume input (or None)."""
    runtime = _runtime.current_workflow.get()
    if runtime is None:
        raise RuntimeError("pause() can only be used inside a workflow")
    return await runtime.pause(name, output)
