"""What the task policy needs of a pod: its phase, its container's state, its result."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from flux.k8s import labels
from flux.k8s.bodies import PodBody
from flux.k8s.protocol import TaskResult, parse_batch_result, parse_task_result
from flux.k8s.states import PodPhase

_TERMINAL = (PodPhase.SUCCEEDED, PodPhase.FAILED)
# Pod status reasons that mean the pod, not the task, failed.
INFRASTRUCTURE_REASONS = frozenset({"Evicted", "NodeLost", "Preempted", "Terminated"})
# The container's terminated reason when it passed its memory limit: the task's
# own code asked for more than it was given, so it fails as code (calls._failure).
OOM_KILLED = "OOMKilled"
# The scheduler's reason for a node that is full only by its pod count
# (NodeResourcesFit): pods that finish make room, so waiting helps. A request
# larger than a node's free CPU or memory reads "Insufficient ...", which may be
# for ever (more than any node has), so that one still times out.
NODE_FULL = "Too many pods"
# Container waiting reasons that mean the pod will not start without a change.
UNSTARTABLE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImageNeverPull",
    }
)


@dataclass(frozen=True)
class PodView:
    """What the decisions need of a pod."""

    name: str
    phase: str  # a PodPhase
    reason: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    exit_code: int | None = None
    terminated_reason: str | None = None
    message: str | None = None
    created: dt.datetime | None = None
    started: dt.datetime | None = None
    log_result: str | None = None
    deleting: bool = False
    unschedulable: str | None = None
    # Calls a batch pod runs, one after another; None for a pod of one call.
    batch_size: int | None = None

    @classmethod
    def from_pod(cls, pod: PodBody, log_result: str | None = None) -> PodView:
        status = pod.get("status") or {}
        containers = status.get("containerStatuses") or []
        state = (containers[0].get("state") or {}) if containers else {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        running = state.get("running") or {}
        meta = pod["metadata"]
        phase = status.get("phase", PodPhase.PENDING)
        if phase not in _TERMINAL and terminated.get("exitCode") == 0 and len(containers) == 1:
            # The kubelet reports the container's exit at once but the pod's terminal
            # phase only once it has stopped the pod's sandbox, about a second later
            # (measured by benchmarks/step_latency.py): half of every step. A
            # container that exited 0 under restartPolicy Never has finished for
            # good, so its step is settled now. A failure still waits for the
            # phase: its reason (Evicted, DeadlineExceeded) may come with it.
            phase = PodPhase.SUCCEEDED
        return cls(
            name=meta["name"],
            phase=phase,
            reason=status.get("reason"),
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message"),
            exit_code=terminated.get("exitCode"),
            terminated_reason=terminated.get("reason"),
            message=terminated.get("message"),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(running.get("startedAt") or terminated.get("startedAt")),
            log_result=log_result,
            deleting=bool(meta.get("deletionTimestamp")),
            batch_size=_batch_size(pod),
            unschedulable=next(
                (
                    c.get("message") or "no node fits"
                    for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
                ),
                None,
            ),
        )

    @property
    def finished(self) -> bool:
        return self.phase in (PodPhase.SUCCEEDED, PodPhase.FAILED)

    @property
    def lost(self) -> bool:
        """Deleted, evicted or its node gone: not the task's doing."""
        return self.deleting or self.reason in INFRASTRUCTURE_REASONS

    @property
    def stuck_pending(self) -> bool:
        """Pending for a reason that will not go away by waiting."""
        return self.phase == PodPhase.PENDING and (
            self.waiting_reason in UNSTARTABLE_REASONS
            or (self.unschedulable is not None and NODE_FULL not in self.unschedulable)
        )

    def for_item(self, call_id: str) -> PodView:
        """A batch pod as one of its calls sees it: with that call's own result.

        A call the batch result does not mention (the runner died first) sees
        no result, so its attempt fails as the pod did.
        """
        if not self.finished:
            return self
        item = None
        text = self.log_result or self.message
        if text:
            try:
                item = parse_batch_result(text).items.get(call_id)
            except ValueError:
                item = None
        return dataclasses.replace(
            self,
            message=item.to_message() if item is not None else None,
            log_result=None,
            exit_code=None if item is not None else self.exit_code,
        )

    def result(self) -> TaskResult | None:
        text = self.message
        if not text:
            return None
        try:
            result = parse_task_result(text)
            if result.in_log:
                return parse_task_result(self.log_result) if self.log_result else None
        except ValueError:  # not a result: the attempt fails as the pod did
            return None
        return result


def _batch_size(pod: PodBody) -> int | None:
    size = (pod["metadata"].get("annotations") or {}).get(labels.ANNOTATION_BATCH_SIZE)
    return int(size) if size is not None else None


def parse_time(value: Any) -> dt.datetime | None:
    """A time as the API writes it (RFC 3339, ``Z`` for UTC), or None when unset."""
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
