"""Checks on stored runs shared by the CLI and the inline API."""

from __future__ import annotations

import os
import socket

from flux.errors import PauseMismatchError
from flux.events import EventType, ExecutionState
from flux.local import claims
from flux.local.claims import RunBusyError
from flux.local.store import RunNotFound, Store

__all__ = [
    "ResumeError",
    "RunBusyError",
    "check_resumable",
    "check_workflow",
    "exists",
    "is_executing_elsewhere",
    "pending_pause",
    "this_process",
]


class ResumeError(ValueError):
    """The run cannot be resumed; the message says why."""


def exists(store: Store, run_id: str) -> bool:
    try:
        store.get_run(run_id)
    except RunNotFound:
        return False
    return True


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_executing_elsewhere(store: Store, run_id: str) -> bool:
    """True when a live process holds the run's claim (see :mod:`flux.local.claims`)."""
    return claims.is_held(claims.lock_path(store.path, run_id))


def check_workflow(store: Store, run_id: str, workflow_name: str) -> None:
    """Refuse to drive a run with a workflow other than the one that started it."""
    recorded = store.get_run(run_id).workflow
    if recorded != workflow_name:
        raise ResumeError(
            f"run {run_id} is a run of workflow {recorded!r}, not {workflow_name!r}; "
            "it was left untouched"
        )


def pending_pause(store: Store, run_id: str) -> str | None:
    """The name of the pause point the run waits at, if any."""
    open_pauses: dict[str, str] = {}
    for event in store.events(run_id):
        if event.type == EventType.TASK_PAUSED:
            open_pauses[event.source_id] = event.name
        elif event.type == EventType.TASK_RESUMED:
            open_pauses.pop(event.source_id, None)
    return next(iter(open_pauses.values()), None)


def check_resumable(store: Store, run_id: str, pause_name: str | None) -> bool:
    """Raise unless the run can be resumed. True when it waits at a pause.

    Call it holding the run's claim, so that no other process changes the run
    between this check and the resumption.
    """
    record = store.get_run(run_id)
    if record.state.is_final:
        raise ResumeError(
            f"run {run_id} has already finished ({record.state.value}); there is nothing to resume"
        )
    waiting_at = pending_pause(store, run_id)
    if record.state == ExecutionState.PAUSED and waiting_at is None:
        raise ResumeError(f"run {run_id} is marked paused but waits at no pause point")
    if pause_name is not None and waiting_at != pause_name:
        where = f"pause {waiting_at!r}" if waiting_at else "no pause point"
        raise PauseMismatchError(f"run {run_id} waits at {where}, not at pause {pause_name!r}")
    return waiting_at is not None
