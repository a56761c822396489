"""Runs written straight into a local store, as the embedded executor leaves them."""

from __future__ import annotations

from typing import Any

from flux.events import ExecutionEvent, ExecutionState
from flux.local.store import Store


def seed_run(
    store: Store,
    run_id: str,
    workflow: str,
    source: dict[str, Any],
    events: list[ExecutionEvent],
    state: ExecutionState | None = None,
) -> None:
    """A run and its history: the first event is created with the run, as it always is."""
    store.create_run(run_id, workflow, source, events[0])
    if events[1:] or state is not None:
        store.append(run_id, events[1:], state)
