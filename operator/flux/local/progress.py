"""Live progress of a run on the terminal, fed by the executor's committed events."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from flux.events import EventType, ExecutionEvent

_ENDS = {
    EventType.TASK_COMPLETED: "done",
    EventType.TASK_FAILED: "failed",
    EventType.TASK_CANCELLED: "cancelled",
}


def is_task_call(event: ExecutionEvent) -> bool:
    """Only calls of @task functions count: built-ins, sleeps and pauses are steps too."""
    return (
        event.type == EventType.TASK_STARTED
        and isinstance(event.value, dict)
        and "args" in event.value
    )


@dataclass
class RunProgress:
    """Counts of a run's task calls, kept up to date from its events."""

    running: set[str] = field(default_factory=set)
    retrying: set[str] = field(default_factory=set)
    ended: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_ENDS.values(), 0))

    def observe(self, events: Iterable[ExecutionEvent]) -> None:
        for event in events:
            call = event.source_id
            if is_task_call(event):
                self.running.add(call)
            elif call not in self.running:
                continue
            elif event.type == EventType.TASK_RETRY_STARTED:
                self.retrying.add(call)
            elif event.type in (EventType.TASK_RETRY_FAILED, EventType.TASK_RETRY_COMPLETED):
                self.retrying.discard(call)
            elif event.type in _ENDS:
                self.running.discard(call)
                self.retrying.discard(call)
                self.ended[_ENDS[event.type]] += 1

    def summary(self) -> str:
        running = f"{len(self.running)} running"
        if self.retrying:
            running += f" ({len(self.retrying)} retrying)"
        parts = [f"{self.ended['done']} done", running, f"{self.ended['failed']} failed"]
        if self.ended["cancelled"]:
            parts.append(f"{self.ended['cancelled']} cancelled")
        return ", ".join(parts)


class LiveProgress:
    """A one-line live display on stderr; does nothing when disabled (not a terminal)."""

    def __init__(self, label: str, history: Iterable[ExecutionEvent], *, enabled: bool):
        self.progress = RunProgress()
        # A resumed run starts from what its history already holds.
        self.progress.observe(history)
        self._label = label
        self._started = time.monotonic()
        self._spinner = Spinner("dots")
        self._live: Live | None = None
        if enabled:
            self._live = Live(
                console=Console(stderr=True),
                get_renderable=self._render,
                transient=True,
                refresh_per_second=8,
                redirect_stdout=False,
            )

    def observe(self, events: list[ExecutionEvent]) -> None:
        self.progress.observe(events)

    def _render(self) -> RenderableType:
        elapsed = time.monotonic() - self._started
        line = Text.assemble((self._label, "bold"), f"  {self.progress.summary()}  {elapsed:.0f}s")
        self._spinner.update(text=line)
        return Group(self._spinner)

    def __enter__(self) -> LiveProgress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
