"""The operator's work queue: one pass of a run at a time, one more after an event,
requeue-after results, the backstop, one retry on a stale view."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from flux.k8s.kube import Conflict, Forbidden, Invalid, PatchTestFailed
from flux.k8s.operator.cache import Key
from flux.k8s.operator.queue import Requeue, WorkQueue

KEY = ("ns", "r1")


class Passes:
    """A pass that records each call and does what the test set up next."""

    def __init__(self, *outcomes: Requeue | BaseException | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[Key] = []
        self.stale: list[Key] = []
        self.finished: set[Key] = set()
        self.gate: asyncio.Event | None = None

    async def __call__(self, key: Key) -> Requeue | None:
        self.calls.append(key)
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def queue(self) -> WorkQueue:
        return WorkQueue(self, stale=self.stale.append, finished=lambda k: k in self.finished)


def test_events_during_a_pass_make_one_more_pass_not_one_each() -> None:
    async def scenario() -> None:
        passes = Passes()
        passes.gate = asyncio.Event()
        queue = passes.queue()
        first = asyncio.create_task(queue.reconcile(*KEY))
        await asyncio.sleep(0)
        for _ in range(3):  # arrive while the first pass runs: they return at once
            await queue.reconcile(*KEY)
        assert passes.calls == [KEY]
        passes.gate.set()
        await first
        assert passes.calls == [KEY, KEY]

    asyncio.run(scenario())


def test_passes_of_different_runs_overlap() -> None:
    async def scenario() -> None:
        passes = Passes()
        passes.gate = asyncio.Event()
        queue = passes.queue()
        both = [asyncio.create_task(queue.reconcile("ns", n)) for n in ("a", "b")]
        await asyncio.sleep(0)
        assert sorted(passes.calls) == [("ns", "a"), ("ns", "b")]
        passes.gate.set()
        await asyncio.gather(*both)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "error", [PatchTestFailed("testing value failed"), Conflict("modified"), Invalid("no key")]
)
def test_a_stale_view_is_dropped_and_the_pass_retried_once(error: Exception) -> None:
    passes = Passes(error)
    asyncio.run(passes.queue().reconcile(*KEY))
    assert passes.calls == [KEY, KEY]
    assert passes.stale == [KEY]


def test_a_second_stale_view_in_a_row_is_raised() -> None:
    passes = Passes(Conflict("modified"), Conflict("modified again"))
    with pytest.raises(Conflict):
        asyncio.run(passes.queue().reconcile(*KEY))
    assert passes.calls == [KEY, KEY]


def test_other_errors_are_raised_without_a_retry() -> None:
    passes = Passes(Forbidden("quota"))
    with pytest.raises(Forbidden):
        asyncio.run(passes.queue().reconcile(*KEY))
    assert passes.calls == [KEY] and passes.stale == []


def soon(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def test_a_pass_is_woken_when_it_asked_to_be() -> None:
    async def scenario() -> None:
        passes = Passes(Requeue(soon(0.05)))
        await passes.queue().reconcile(*KEY)
        await asyncio.sleep(0.3)
        assert passes.calls == [KEY, KEY]

    asyncio.run(scenario())


def test_a_later_answer_replaces_the_wake_up() -> None:
    async def scenario() -> None:
        # Woken soon, then told nothing is due: the first wake-up is cancelled.
        passes = Passes(Requeue(soon(0.1)), Requeue(None))
        queue = passes.queue()
        await queue.reconcile(*KEY)
        await queue.reconcile(*KEY)
        await asyncio.sleep(0.3)
        assert passes.calls == [KEY, KEY]

    asyncio.run(scenario())


def test_a_pass_with_nothing_to_do_keeps_the_wake_up() -> None:
    async def scenario() -> None:
        passes = Passes(Requeue(soon(0.1)), None)
        queue = passes.queue()
        await queue.reconcile(*KEY)
        await queue.reconcile(*KEY)
        await asyncio.sleep(0.3)
        assert passes.calls == [KEY, KEY, KEY]

    asyncio.run(scenario())


def test_a_forgotten_run_is_not_woken() -> None:
    async def scenario() -> None:
        passes = Passes(Requeue(soon(0.05)))
        queue = passes.queue()
        await queue.reconcile(*KEY)
        queue.forget(KEY)
        await asyncio.sleep(0.2)
        assert passes.calls == [KEY]

    asyncio.run(scenario())


def test_the_backstop_passes_unfinished_runs_only() -> None:
    async def scenario() -> None:
        passes = Passes()
        passes.finished.add(("ns", "done"))
        queue = passes.queue()
        for name in ("open", "done", "ended"):
            await queue.reconcile("ns", name)
        queue.finished(("ns", "ended"))  # its pass saw it finish
        passes.calls.clear()
        backstop = asyncio.create_task(queue.backstop(interval=0.06))
        await asyncio.sleep(0.15)
        backstop.cancel()
        assert set(passes.calls) == {("ns", "open")}

    asyncio.run(scenario())


def test_a_stopped_queue_starts_no_pass_and_its_wake_ups_are_cancelled() -> None:
    """Leadership is being handed over: this replica must not act any more."""

    async def scenario() -> None:
        soon = dt.datetime.now(dt.UTC)
        passes = Passes(Requeue(at=soon))
        queue = passes.queue()
        await queue.reconcile(*KEY)  # schedules a wake-up right away
        queue.stop()
        await asyncio.sleep(0.3)  # past the wake-up and its slack
        await queue.reconcile(*KEY)
        assert passes.calls == [KEY]

    asyncio.run(scenario())
