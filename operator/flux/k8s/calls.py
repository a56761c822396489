"""The task policy on Kubernetes: one task call's next move from its record and pod.

Pure functions. A call's record in ``status.tasks`` says where it stands
(attempts, step, pod, next attempt time, last error); the pod says how the
current step went. The decisions themselves come from the engine's policy
state machine, the same one the embedded executor uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flux.engine.failures import ErrorInfo, FailureKind, timeout_info, wrap_execution
from flux.engine.policy import (
    Fail,
    RunAttempt,
    RunFallback,
    RunRollback,
    TaskPolicy,
    after_attempt_failure,
)
from flux.events import EventType
from flux.k8s import api
from flux.k8s.protocol import TaskResult, parse_batch_result, parse_task_result
from flux.k8s.states import (
    FINISHED_TASK_STATES,
    POD_STATES,
    STATE_OF_STEP,
    EventKind,
    Outcome,
    PodPhase,
    Reason,
    Step,
    TaskState,
)

# Pod status reasons that mean the pod, not the task, failed.
INFRASTRUCTURE_REASONS = frozenset({"Evicted", "NodeLost", "Preempted", "Terminated"})
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
class Call:
    """A task call as its TASK_STARTED event describes it."""

    call_id: str
    name: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    policy: TaskPolicy
    secrets: list[str]
    # task.map(..., batch_size=N): calls of one group share pods, N at a time.
    batch_group: str | None = None
    batch_size: int = 1

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Call:
        value = event.get("value") or {}
        batch = value.get("batch") or {}
        return cls(
            call_id=event["sourceId"],
            name=event["name"],
            task=value["task"],
            args=value.get("args") or [],
            kwargs=value.get("kwargs") or {},
            policy=TaskPolicy.from_dict(value.get("policy") or {}),
            secrets=list(value.get("secrets") or []),
            batch_group=batch.get("group"),
            batch_size=max(1, int(batch.get("size", 1))),
        )


@dataclass
class CallMove:
    """What to do for one call: its new record, a pod to start, pods to remove."""

    record: dict[str, Any]
    start: tuple[Step, int] | None = None
    delete: list[str] = field(default_factory=list)
    wake_at: dt.datetime | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PodView:
    """What the decisions need of a pod."""

    name: str
    phase: str
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
    def from_pod(cls, pod: dict[str, Any], log_result: str | None = None) -> PodView:
        status = pod.get("status") or {}
        containers = status.get("containerStatuses") or []
        state = (containers[0].get("state") or {}) if containers else {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        running = state.get("running") or {}
        return cls(
            name=pod["metadata"]["name"],
            phase=status.get("phase", PodPhase.PENDING),
            reason=status.get("reason"),
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message"),
            exit_code=terminated.get("exitCode"),
            terminated_reason=terminated.get("reason"),
            message=terminated.get("message"),
            created=_time(pod["metadata"].get("creationTimestamp")),
            started=_time(running.get("startedAt") or terminated.get("startedAt")),
            log_result=log_result,
            deleting=bool(pod["metadata"].get("deletionTimestamp")),
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


def _batch_size(pod: dict[str, Any]) -> int | None:
    size = (pod["metadata"].get("annotations") or {}).get(api.ANNOTATION_BATCH_SIZE)
    return int(size) if size is not None else None


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def next_move(
    call: Call,
    record: dict[str, Any] | None,
    pod: PodView | None,
    now: dt.datetime,
    *,
    pending_timeout: float,
    infrastructure_retries: int,
    timeout_backstop: float,
    unit_random: float = 0.5,
    secret_refs: dict[str, dict[str, str]] | None = None,
    cancel_requested: bool = False,
) -> CallMove | None:
    """The next move for ``call``, or None when there is nothing to do yet.

    ``secret_refs`` maps the Workflow's secret names to their Secret and key;
    ``cancel_requested`` says the workflow gave up on the call.
    """
    secret_refs = secret_refs or {}
    if cancel_requested and not (record or {}).get("cancelling"):
        return _cancel(call, record, pod, now)
    if record is None:
        unmapped = [name for name in call.secrets if name not in secret_refs]
        if unmapped:
            return _secrets_missing(
                call,
                now,
                ", ".join(unmapped) + " (the Workflow's "
                "spec.secrets maps no Kubernetes Secret to it)",
            )
        fresh = {
            "callId": call.call_id,
            "name": call.name,
            "state": TaskState.RUNNING,
            "step": Step.ATTEMPT,
            "attempts": 1,
            "startTime": now.isoformat(),
        }
        return CallMove(fresh, start=(Step.ATTEMPT, 1))
    state = record.get("state")
    step = Step(record.get("step", Step.ATTEMPT.value))
    if state == TaskState.RETRYING:
        due = _time(record.get("nextAttemptAt"))
        if due is not None and due > now:
            return CallMove(record, wake_at=due)
        attempt = int(record.get("attempts", 1)) + 1
        updated = {**record, "state": TaskState.RUNNING, "attempts": attempt, "nextAttemptAt": None}
        return CallMove(updated, start=(Step.ATTEMPT, attempt))
    if state not in POD_STATES:
        return None
    attempt = int(record.get("attempts", 1))
    if pod is None or pod.deleting or pod.reason in INFRASTRUCTURE_REASONS:
        # The operator deletes a step's pod only after recording its result, so a
        # pod gone or going while still current was deleted, evicted or lost.
        move = _pod_lost(call, record, step, attempt, infrastructure_retries)
        if pod is not None:
            move.delete.append(pod.name)
        return move
    if pod.waiting_reason == "CreateContainerConfigError" and call.secrets:
        # Usually a missing Secret or key: that will not fix itself, so fail now.
        refs = "; ".join(
            f"secret {n} is key {secret_refs[n]['key']!r} of Secret "
            f"{secret_refs[n]['secretName']!r}"
            for n in call.secrets
            if n in secret_refs
        )
        move = _secrets_missing(
            call,
            now,
            f"{', '.join(call.secrets)}: {pod.waiting_message or 'the pod cannot start'} ({refs})",
        )
        move.record = {**record, **move.record, "pod": None}
        move.delete.append(pod.name)
        return move
    if not pod.finished:
        return _still_running(call, record, step, pod, now, pending_timeout, timeout_backstop)
    result = pod.result()
    if (
        pod.phase == PodPhase.SUCCEEDED
        and result is not None
        and result.outcome == Outcome.COMPLETED
    ):
        return _step_succeeded(record, step, result, pod, now)
    return _step_failed(
        call, record, step, attempt, _failure(call, pod, result), pod.name, now, unit_random
    )


def _step_succeeded(
    record: dict[str, Any], step: Step, result: TaskResult, pod: PodView, now: dt.datetime
) -> CallMove:
    done = {**record, "finishTime": now.isoformat(), "pod": None}
    attempt = int(record.get("attempts", 1))
    if step == Step.ROLLBACK:
        # The rollback ran; the task still fails with the error that triggered it
        # (or, when the workflow gave up on it, ends cancelled).
        if record.get("cancelling"):
            done.update(state=TaskState.CANCELLED)
        else:
            done.update(state=TaskState.FAILED, error=wrap_execution(record["triggerError"]))
        done = with_step(done, EventType.TASK_ROLLBACK_COMPLETED, at=now)
    else:
        done.update(state=TaskState.COMPLETED, output=result.value)
        if step == Step.FALLBACK:
            done = with_step(done, EventType.TASK_FALLBACK_COMPLETED, at=now)
        elif attempt > 1:
            done = with_step(done, EventType.TASK_RETRY_COMPLETED, {"attempt": attempt}, at=now)
    return CallMove(done, delete=[pod.name])


def _step_failed(
    call: Call,
    record: dict[str, Any],
    step: Step,
    attempt: int,
    failure: ErrorInfo,
    pod_name: str,
    now: dt.datetime,
    unit_random: float,
) -> CallMove:
    record = {**record, "lastError": _last_error(failure), "pod": None}
    if step != Step.ATTEMPT:
        ended = (
            EventType.TASK_FALLBACK_FAILED
            if step == Step.FALLBACK
            else EventType.TASK_ROLLBACK_FAILED
        )
        record = with_step(record, ended, {"error": failure}, at=now)
        if record.get("cancelling"):
            return CallMove(
                {**record, "state": TaskState.CANCELLED, "finishTime": now.isoformat()},
                delete=[pod_name],
            )
        failed = {
            **record,
            "state": TaskState.FAILED,
            "finishTime": now.isoformat(),
            "error": wrap_execution(failure),
        }
        return CallMove(failed, delete=[pod_name], events=[_task_failed_event(call, failure)])
    if attempt > 1:
        record = with_step(
            record, EventType.TASK_RETRY_FAILED, {"attempt": attempt, "error": failure}, at=now
        )
    decision = after_attempt_failure(call.policy, attempt, failure, now, unit_random)
    match decision:
        case RunAttempt():
            record = with_step(
                record,
                EventType.TASK_RETRY_STARTED,
                {
                    "attempt": decision.attempt,
                    "delay": decision.delay,
                    "not_before": decision.not_before.isoformat(),
                    "error": failure,
                },
                at=now,
            )
            retry = {
                **record,
                "state": TaskState.RETRYING,
                "nextAttemptAt": decision.not_before.isoformat(),
            }
            return CallMove(retry, delete=[pod_name], wake_at=decision.not_before)
        case RunFallback():
            record = with_step(
                record, EventType.TASK_FALLBACK_STARTED, {"error": decision.error}, at=now
            )
            moved = {
                **record,
                "state": STATE_OF_STEP[Step.FALLBACK],
                "step": Step.FALLBACK,
                "triggerError": decision.error,
            }
            return CallMove(moved, start=(Step.FALLBACK, 1), delete=[pod_name])
        case RunRollback():
            record = with_step(
                record, EventType.TASK_ROLLBACK_STARTED, {"error": decision.error}, at=now
            )
            moved = {
                **record,
                "state": STATE_OF_STEP[Step.ROLLBACK],
                "step": Step.ROLLBACK,
                "triggerError": decision.error,
            }
            return CallMove(moved, start=(Step.ROLLBACK, 1), delete=[pod_name])
        case Fail():
            failed = {
                **record,
                "state": TaskState.FAILED,
                "finishTime": now.isoformat(),
                "error": wrap_execution(decision.error),
            }
            return CallMove(
                failed, delete=[pod_name], events=[_task_failed_event(call, decision.error)]
            )


CANCELLED_ERROR: ErrorInfo = {
    "type": "CancelledError",
    "module": "asyncio",
    "message": "the task was cancelled",
    "kind": FailureKind.CODE,
}


def _cancel(
    call: Call, record: dict[str, Any] | None, pod: PodView | None, now: dt.datetime
) -> CallMove | None:
    """Stop a call the workflow gave up on; one that had started runs its rollback."""
    if record is None:
        return CallMove(
            {
                "callId": call.call_id,
                "name": call.name,
                "state": TaskState.CANCELLED,
                "attempts": 0,
                "finishTime": now.isoformat(),
            }
        )
    if record.get("state") in FINISHED_TASK_STATES:
        return None  # it ended first; the driver delivers that outcome
    delete = [pod.name] if pod is not None else []
    if call.policy.has_rollback and not call.policy.has_fallback:
        rolling = with_step(
            {
                **record,
                "state": STATE_OF_STEP[Step.ROLLBACK],
                "step": Step.ROLLBACK,
                "triggerError": CANCELLED_ERROR,
                "cancelling": True,
                "nextAttemptAt": None,
            },
            EventType.TASK_ROLLBACK_STARTED,
            {"error": CANCELLED_ERROR},
            at=now,
        )
        return CallMove(rolling, start=(Step.ROLLBACK, 1), delete=delete)
    return CallMove(
        {
            **record,
            "state": TaskState.CANCELLED,
            "pod": None,
            "nextAttemptAt": None,
            "finishTime": now.isoformat(),
        },
        delete=delete,
    )


def _secrets_missing(call: Call, now: dt.datetime, detail: str) -> CallMove:
    """A task whose secrets cannot reach it fails before its body runs, without retries."""
    failure: ErrorInfo = {
        "type": "SecretsNotFoundError",
        "module": "flux.errors",
        "kind": FailureKind.UNSTARTABLE,
        "message": f"task {call.name!r}: missing secret(s): {detail}",
    }
    record = {
        "callId": call.call_id,
        "name": call.name,
        "state": TaskState.FAILED,
        "step": Step.ATTEMPT,
        "attempts": 0,
        "startTime": now.isoformat(),
        "finishTime": now.isoformat(),
        "error": wrap_execution(failure),
        "lastError": _last_error(failure),
    }
    return CallMove(record, events=[_task_failed_event(call, failure)])


def with_step(
    record: dict[str, Any], event_type: EventType, value: Any = None, *, at: dt.datetime
) -> dict[str, Any]:
    """``record`` with one more policy step, in the form history keeps it.

    The driver copies these steps into history before the call's outcome, so a
    run's history shows retries, fallbacks and rollbacks as the embedded
    executor records them. ``at`` is when the step happened: the driver copies
    them later (when the call ends), and history keeps this time, not the copy's.
    """
    step = {"type": event_type.value, "value": value, "time": at.isoformat()}
    return {**record, "steps": [*record.get("steps", []), step]}


def _pod_lost(
    call: Call, record: dict[str, Any], step: Step, attempt: int, budget: int
) -> CallMove:
    """The pod vanished (deleted, evicted, node lost): not the task's fault."""
    used = int(record.get("infrastructureRetries", 0))
    if used < budget:
        again = {
            **record,
            "infrastructureRetries": used + 1,
            "lastError": {
                "type": "PodLost",
                "kind": FailureKind.INFRASTRUCTURE,
                "message": f"pod {record.get('pod')} disappeared; started again",
            },
        }
        return CallMove(again, start=(step, attempt))
    failure: ErrorInfo = {
        "type": "PodLost",
        "module": "",
        "kind": FailureKind.INFRASTRUCTURE,
        "message": f"pod of task {call.name!r} was lost {used + 1} times",
    }
    failed = {
        **record,
        "state": TaskState.FAILED,
        "error": wrap_execution(failure),
        "lastError": _last_error(failure),
    }
    return CallMove(failed, events=[_task_failed_event(call, failure)])


def _still_running(
    call: Call,
    record: dict[str, Any],
    step: Step,
    pod: PodView,
    now: dt.datetime,
    pending_timeout: float,
    backstop: float,
) -> CallMove | None:
    if pod.phase == PodPhase.PENDING and pod.created is not None:
        stuck = pod.waiting_reason in UNSTARTABLE_REASONS or pod.unschedulable is not None
        waited = (now - pod.created).total_seconds()
        if stuck and waited > pending_timeout:
            reason = pod.waiting_reason or ("Unschedulable" if pod.unschedulable else "Pending")
            detail = pod.waiting_message or pod.unschedulable or ""
            failure: ErrorInfo = {
                "type": "PodStartError",
                "module": "",
                "kind": FailureKind.UNSTARTABLE,
                "reason": reason,
                "message": f"pod {pod.name} could not start in {pending_timeout:g}s: "
                f"{reason}: {detail}".rstrip(": "),
            }
            attempt = int(record.get("attempts", 1))
            return _step_failed(call, record, step, attempt, failure, pod.name, now, 0.5)
    timeout = call.policy.timeout
    if step == Step.ATTEMPT and timeout and pod.started is not None:
        # A batch pod runs its calls one after another, each with its own deadline.
        allowed = timeout * (pod.batch_size or 1) + backstop
        overdue = (now - pod.started).total_seconds() - allowed
        if overdue > 0:
            attempt = int(record.get("attempts", 1))
            return _step_failed(
                call, record, step, attempt, timeout_info(call.name, timeout), pod.name, now, 0.5
            )
        return CallMove(record, wake_at=pod.started + dt.timedelta(seconds=allowed + 1))
    if pod.phase == PodPhase.PENDING and pod.created is not None:
        # Checked again when the pod could have been pending too long.
        return CallMove(record, wake_at=pod.created + dt.timedelta(seconds=pending_timeout + 1))
    return None


def _failure(call: Call, pod: PodView, result: TaskResult | None) -> ErrorInfo:
    """Why a step's pod failed, from the task's own report or the pod's state."""
    if result is not None and result.error:
        info: ErrorInfo = result.error  # type: ignore[assignment]
        if pod.exit_code is not None:
            info["exit_code"] = pod.exit_code
        return info
    if pod.reason == "DeadlineExceeded":
        info = timeout_info(call.name, call.policy.timeout)
        info["reason"] = "DeadlineExceeded"
        return info
    reason = pod.terminated_reason or pod.reason or "Error"
    info = {
        "type": "PodFailed",
        "module": "",
        "kind": FailureKind.CODE,
        "reason": reason,
        "message": f"task container ended with exit code {pod.exit_code} ({reason})",
    }
    if pod.exit_code is not None:
        info["exit_code"] = pod.exit_code
    return info


def _last_error(info: ErrorInfo) -> dict[str, Any]:
    return {
        k: v
        for k, v in {
            "type": info.get("type"),
            "message": info.get("message"),
            "kind": info.get("kind"),
            "exitCode": info.get("exit_code"),
            "reason": info.get("reason"),
        }.items()
        if v is not None
    }


def _task_failed_event(call: Call, info: ErrorInfo) -> tuple[str, str, str]:
    return (
        EventKind.WARNING,
        Reason.TASK_FAILED,
        f"task {call.name} ({call.call_id}) failed: {info.get('type')}: {info.get('message')}",
    )
