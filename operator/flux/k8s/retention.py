"""Retention: when a finished run expires, and how fast expired runs are deleted.

Pure: the operator's :mod:`flux.k8s.operator.retention` does the deleting.
A run's time to live is the first of its ``spec.ttlSecondsAfterFinished``, its
Workflow's ``spec.runTTLSecondsAfterFinished`` and the operator's default
(``FLUX_RUN_TTL_SECONDS_AFTER_FINISHED``); it counts from ``status.finishTime``,
as a Job's ``ttlSecondsAfterFinished`` does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flux.k8s.pod_view import parse_time
from flux.k8s.states import FINAL_PHASES


def ttl_seconds(
    run: Mapping[str, Any], workflow: Mapping[str, Any] | None, default: int | None
) -> int | None:
    """The run's time to live once finished; None: kept."""
    own = (run.get("spec") or {}).get("ttlSecondsAfterFinished")
    if own is not None:
        return int(own)
    if workflow is not None:
        inherited = (workflow.get("spec") or {}).get("runTTLSecondsAfterFinished")
        if inherited is not None:
            return int(inherited)
    return default


def expires_at(
    run: Mapping[str, Any], workflow: Mapping[str, Any] | None, default: int | None
) -> dt.datetime | None:
    """When the run is to be deleted; None while it runs, or if it is kept."""
    status: Any = run.get("status") or {}
    finished = parse_time(status.get("finishTime"))
    if status.get("phase") not in FINAL_PHASES or finished is None:
        return None
    ttl = ttl_seconds(run, workflow, default)
    if ttl is None:
        return None
    try:
        return finished + dt.timedelta(seconds=ttl)
    except OverflowError:  # past the year 9999: as good as kept (the CRD caps it lower)
        return None


@dataclass
class TokenBucket:
    """At most ``rate`` deletions a second on average, ``burst`` at once.

    A token is earned every ``1 / rate`` seconds up to ``burst``; each deletion
    spends one. ``take`` says how long to wait before the next deletion may go,
    so the deleter sleeps instead of polling.
    """

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> float:
        """Spend a token if there is one and return 0; else the seconds until one is earned."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        # Within rounding of a whole token: waiting the float error out could
        # need a step too small to move the clock.
        if self.tokens >= 1 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1)
            return 0.0
        return (1 - self.tokens) / self.rate
