"""What one reconcile reads and what it decides."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flux.k8s.archive import OpenCalls
from flux.k8s.bodies import TaskRecordBody


@dataclass
class Observed:
    """The run, its Workflow and its pods as read from the API (JSON bodies)."""

    run: dict[str, Any]
    workflow: dict[str, Any] | None
    pods: list[dict[str, Any]]
    now: dt.datetime
    logs: dict[str, str] = field(default_factory=dict)
    # The calls the whole history (archive and status) leaves open; derived from
    # status.history alone when not given (a run with nothing archived).
    open_calls: OpenCalls | None = None
    # Whether the shared driver of the run's Workflow is known to be up.
    shared_driver_up: bool = False
    # Per-run driver pods this run may start now (see reconcile.driver.plan_driver);
    # None: no bound.
    driver_slots: int | None = None
    # The ConfigMap of the revision the run recorded, read when that is not its
    # Workflow's current one (None: not read, or not found).
    revision_configmap: dict[str, Any] | None = None
    # Why an archived chunk of the run's history could not be read (gone, changed
    # or not history), when one could not; open_calls is None then.
    history_lost: str | None = None


@dataclass
class Plan:
    """What the operator is to do: a status patch, pods to create and delete, Events."""

    # The status fields to change (a RunStatusBody; the operator's status_ops takes a dict).
    status: dict[str, Any] = field(default_factory=dict)
    create: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    wake_at: dt.datetime | None = None
    # Settled task records to move out of status into the task archive.
    archive_tasks: list[TaskRecordBody] = field(default_factory=list)
    # The Workflow's shared driver pod, to create unless it is already there.
    shared_driver: dict[str, Any] | None = None

    def wake(self, when: dt.datetime | None) -> None:
        if when is not None and (self.wake_at is None or when < self.wake_at):
            self.wake_at = when
