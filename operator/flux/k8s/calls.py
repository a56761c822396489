"""The task policy on Kubernetes: one task call's next move from its record and pod.

Pure functions. A call's record in ``status.tasks`` says where it stands
(attempts, step, pod, next attempt time, last error); the pod says how the
current step went. The decisions themselves come from the engine's policy
state machine, the same one the embedded executor uses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

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
from flux.k8s.bodies import LastErrorBody, PolicyStepBody, SecretRefBody, TaskRecordBody
from flux.k8s.pod_view import OOM_KILLED, PodView, parse_time
from flux.k8s.protocol import TaskResult
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
from flux.pod_settings import PodSettings

# The error a call the workflow gave up on fails with, and its rollback gets.
CANCELLED_ERROR: ErrorInfo = {
    "type": "CancelledError",
    "module": "asyncio",
    "message": "the task was cancelled",
    "kind": FailureKind.CODE,
}
# The unit random number of decisions not drawn by a reconcile: the retry delay's
# jitter of a step that timed out or never started is its midpoint.
_MIDPOINT = 0.5


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
    # The task's own pod settings (task.with_options), checked again here: history
    # is data. ``pod_problem`` says what was wrong with them; the call then fails.
    pod: PodSettings | None = None
    pod_problem: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Call:
        value = event.get("value") or {}
        batch = value.get("batch") or {}
        pod, pod_problem = parse_pod_settings(value.get("pod"))
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
            pod=pod,
            pod_problem=pod_problem,
        )


def parse_pod_settings(recorded: object) -> tuple[PodSettings | None, str | None]:
    """A call's pod settings as its event records them, or what is wrong with them."""
    if recorded is None:
        return None, None
    try:
        return PodSettings.from_dict(recorded), None
    except ValueError as exc:
        return None, str(exc)


@dataclass
class CallMove:
    """What to do for one call: its new record, a pod to start, pods to remove."""

    record: TaskRecordBody
    start: tuple[Step, int] | None = None  # the step and attempt a new pod runs
    delete: list[str] = field(default_factory=list)
    wake_at: dt.datetime | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


def next_move(
    call: Call,
    record: TaskRecordBody | None,
    pod: PodView | None,
    now: dt.datetime,
    *,
    pending_timeout: float,
    infrastructure_retries: int,
    timeout_backstop: float,
    unit_random: float = 0.5,
    secret_refs: Mapping[str, SecretRefBody] | None = None,
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
        fresh: TaskRecordBody = {
            "callId": call.call_id,
            "name": call.name,
            "state": TaskState.RUNNING,
            "step": Step.ATTEMPT,
            "attempts": 1,
            "startTime": now.isoformat(),
        }
        return CallMove(fresh, start=(Step.ATTEMPT, 1))
    state = record.get("state")
    if state == TaskState.RETRYING:
        due = parse_time(record.get("nextAttemptAt"))
        if due is not None and due > now:
            return CallMove(record, wake_at=due)
        attempt = record.get("attempts", 1) + 1
        updated: TaskRecordBody = {
            **record,
            "state": TaskState.RUNNING,
            "attempts": attempt,
            "nextAttemptAt": None,
        }
        return CallMove(updated, start=(Step.ATTEMPT, attempt))
    if state not in POD_STATES:
        return None
    current = _CurrentStep(call, record, now)
    if pod is None or pod.lost:
        # The operator deletes a step's pod only after recording its result, so a
        # pod gone or going while still current was deleted, evicted or lost.
        move = current.pod_lost(infrastructure_retries)
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
        return current.still_running(pod, pending_timeout, timeout_backstop)
    result = pod.result()
    if (
        pod.phase == PodPhase.SUCCEEDED
        and result is not None
        and result.outcome == Outcome.COMPLETED
    ):
        return current.succeeded(result, pod.name)
    return current.failed(_failure(call, pod, result), pod.name, unit_random)


@dataclass(frozen=True)
class _CurrentStep:
    """The step a call's record says its pod runs, decided on at ``now``."""

    call: Call
    record: TaskRecordBody
    now: dt.datetime

    @property
    def step(self) -> Step:
        return Step(self.record.get("step", Step.ATTEMPT))

    @property
    def attempt(self) -> int:
        return self.record.get("attempts", 1)

    def succeeded(self, result: TaskResult, pod_name: str) -> CallMove:
        now, step = self.now, self.step
        done: TaskRecordBody = {**self.record, "finishTime": now.isoformat(), "pod": None}
        if step == Step.ROLLBACK:
            # The rollback ran; the task still fails with the error that triggered it
            # (or, when the workflow gave up on it, ends cancelled).
            if done.get("cancelling"):
                done = {**done, "state": TaskState.CANCELLED}
            else:
                error = wrap_execution(done["triggerError"])
                done = {**done, "state": TaskState.FAILED, "error": error}
            done = with_step(done, EventType.TASK_ROLLBACK_COMPLETED, at=now)
        else:
            done = {**done, "state": TaskState.COMPLETED, "output": result.value}
            if step == Step.FALLBACK:
                done = with_step(done, EventType.TASK_FALLBACK_COMPLETED, at=now)
            elif self.attempt > 1:
                value = {"attempt": self.attempt}
                done = with_step(done, EventType.TASK_RETRY_COMPLETED, value, at=now)
        return CallMove(done, delete=[pod_name])

    def failed(self, failure: ErrorInfo, pod_name: str, unit_random: float) -> CallMove:
        """The step failed: the policy says whether to retry, fall back, roll back or fail."""
        now, step, attempt, call = self.now, self.step, self.attempt, self.call
        record: TaskRecordBody = {**self.record, "lastError": _last_error(failure), "pod": None}
        if step != Step.ATTEMPT:
            ended = (
                EventType.TASK_FALLBACK_FAILED
                if step == Step.FALLBACK
                else EventType.TASK_ROLLBACK_FAILED
            )
            record = with_step(record, ended, {"error": failure}, at=now)
            if record.get("cancelling"):
                cancelled: TaskRecordBody = {
                    **record,
                    "state": TaskState.CANCELLED,
                    "finishTime": now.isoformat(),
                }
                return CallMove(cancelled, delete=[pod_name])
            return _failed(call, record, failure, now, delete=[pod_name])
        if attempt > 1:
            value = {"attempt": attempt, "error": failure}
            record = with_step(record, EventType.TASK_RETRY_FAILED, value, at=now)
        decision = after_attempt_failure(call.policy, attempt, failure, now, unit_random)
        match decision:
            case RunAttempt():
                retry_value = {
                    "attempt": decision.attempt,
                    "delay": decision.delay,
                    "not_before": decision.not_before.isoformat(),
                    "error": failure,
                }
                record = with_step(record, EventType.TASK_RETRY_STARTED, retry_value, at=now)
                retry: TaskRecordBody = {
                    **record,
                    "state": TaskState.RETRYING,
                    "nextAttemptAt": decision.not_before.isoformat(),
                }
                return CallMove(retry, delete=[pod_name], wake_at=decision.not_before)
            case RunFallback():
                return _switch(record, Step.FALLBACK, decision.error, now, delete=[pod_name])
            case RunRollback():
                return _switch(record, Step.ROLLBACK, decision.error, now, delete=[pod_name])
            case Fail():
                return _failed(call, record, decision.error, now, delete=[pod_name])

    def pod_lost(self, budget: int) -> CallMove:
        """The pod vanished (deleted, evicted, node lost): not the task's fault."""
        record, call = self.record, self.call
        used = record.get("infrastructureRetries", 0)
        if used < budget:
            again: TaskRecordBody = {
                **record,
                "infrastructureRetries": used + 1,
                "lastError": {
                    "type": "PodLost",
                    "kind": FailureKind.INFRASTRUCTURE,
                    "message": f"pod {record.get('pod')} disappeared; started again",
                },
            }
            return CallMove(again, start=(self.step, self.attempt))
        failure = _error(
            "PodLost",
            FailureKind.INFRASTRUCTURE,
            f"pod of task {call.name!r} was lost {used + 1} times",
        )
        failed: TaskRecordBody = {
            **record,
            "state": TaskState.FAILED,
            "error": wrap_execution(failure),
            "lastError": _last_error(failure),
        }
        return CallMove(failed, events=[_task_failed_event(call, failure)])

    def still_running(
        self, pod: PodView, pending_timeout: float, backstop: float
    ) -> CallMove | None:
        """A pod not finished: failed if it cannot start or ran past its deadline."""
        now, call = self.now, self.call
        if pod.stuck_pending and pod.created is not None:
            waited = (now - pod.created).total_seconds()
            if waited > pending_timeout:
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
                return self.failed(failure, pod.name, _MIDPOINT)
        timeout = call.policy.timeout
        if self.step == Step.ATTEMPT and timeout and pod.started is not None:
            # A batch pod runs its calls one after another, each with its own deadline.
            allowed = timeout * (pod.batch_size or 1) + backstop
            overdue = (now - pod.started).total_seconds() - allowed
            if overdue > 0:
                return self.failed(timeout_info(call.name, timeout), pod.name, _MIDPOINT)
            return CallMove(self.record, wake_at=pod.started + dt.timedelta(seconds=allowed + 1))
        if pod.phase == PodPhase.PENDING and pod.created is not None:
            # Checked again when the pod could have been pending too long.
            wake = pod.created + dt.timedelta(seconds=pending_timeout + 1)
            return CallMove(self.record, wake_at=wake)
        return None


def _switch(
    record: TaskRecordBody, step: Step, error: ErrorInfo, now: dt.datetime, *, delete: list[str]
) -> CallMove:
    """The call moves on to its fallback or rollback, in a new pod."""
    started = (
        EventType.TASK_FALLBACK_STARTED
        if step == Step.FALLBACK
        else EventType.TASK_ROLLBACK_STARTED
    )
    record = with_step(record, started, {"error": error}, at=now)
    moved: TaskRecordBody = {
        **record,
        "state": STATE_OF_STEP[step],
        "step": step,
        "triggerError": error,
    }
    return CallMove(moved, start=(step, 1), delete=delete)


def _failed(
    call: Call, record: TaskRecordBody, error: ErrorInfo, now: dt.datetime, *, delete: list[str]
) -> CallMove:
    """The call fails with ``error``; an Event says so."""
    failed: TaskRecordBody = {
        **record,
        "state": TaskState.FAILED,
        "finishTime": now.isoformat(),
        "error": wrap_execution(error),
    }
    return CallMove(failed, delete=delete, events=[_task_failed_event(call, error)])


def _cancel(
    call: Call, record: TaskRecordBody | None, pod: PodView | None, now: dt.datetime
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
    failure = _error(
        "SecretsNotFoundError",
        FailureKind.UNSTARTABLE,
        f"task {call.name!r}: missing secret(s): {detail}",
        module="flux.errors",
    )
    return _refused(call, now, failure)


def refuse_pod(
    call: Call,
    record: TaskRecordBody | None,
    move: CallMove | None,
    refusal: str | None,
    now: dt.datetime,
) -> CallMove | None:
    """``move`` (from :func:`next_move`), unless it starts a pod that the call's
    settings may not have (``refusal``, from ``pods.pod_settings_refusal``): the
    call then fails instead.

    A call not started yet fails as one whose secrets cannot reach it: no pod,
    no retries. A pod already running keeps running; only no new one starts
    (the operator's allow-list may have changed since the call started).
    """
    if refusal is None or move is None or move.start is None:
        return move
    failure = _error(
        "PodSettingsRefused", FailureKind.UNSTARTABLE, f"task {call.name!r}: {refusal}"
    )
    if record is None:
        return _refused(call, now, failure)
    refused: TaskRecordBody = {**move.record, "lastError": _last_error(failure), "pod": None}
    return _failed(call, refused, failure, now, delete=move.delete)


def _refused(call: Call, now: dt.datetime, failure: ErrorInfo) -> CallMove:
    """A call that cannot get a pod fails before its body runs, without retries."""
    record: TaskRecordBody = {
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
    record: TaskRecordBody, event_type: EventType, value: Any = None, *, at: dt.datetime
) -> TaskRecordBody:
    """``record`` with one more policy step, in the form history keeps it.

    The driver copies these steps into history before the call's outcome, so a
    run's history shows retries, fallbacks and rollbacks as the embedded
    executor records them. ``at`` is when the step happened: the driver copies
    them later (when the call ends), and history keeps this time, not the copy's.
    """
    step: PolicyStepBody = {"type": event_type.value, "value": value, "time": at.isoformat()}
    return {**record, "steps": [*record.get("steps", []), step]}


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
    message = f"task container ended with exit code {pod.exit_code} ({reason})"
    if reason == OOM_KILLED:
        # The task's own code used more memory than its limit (its resources
        # option or the Workflow's taskDefaults): a failure of the code, retried
        # as one. The cluster's doing is an eviction for memory pressure on the
        # node, which PodView.lost tells apart.
        message = (
            "task container was killed for using more memory than its limit "
            f"(OOMKilled, exit code {pod.exit_code})"
        )
    info = {
        "type": "PodFailed",
        "module": "",
        "kind": FailureKind.CODE,
        "reason": reason,
        "message": message,
    }
    if pod.exit_code is not None:
        info["exit_code"] = pod.exit_code
    return info


def _error(type_name: str, kind: FailureKind, message: str, *, module: str = "") -> ErrorInfo:
    """An error the operator finds itself (no exception of the task's raised it)."""
    return {"type": type_name, "module": module, "kind": kind, "message": message}


def _last_error(info: ErrorInfo) -> LastErrorBody:
    found: dict[str, Any] = {
        "type": info.get("type"),
        "message": info.get("message"),
        "kind": info.get("kind"),
        "exitCode": info.get("exit_code"),
        "reason": info.get("reason"),
    }
    return cast(LastErrorBody, {k: v for k, v in found.items() if v is not None})


def _task_failed_event(call: Call, info: ErrorInfo) -> tuple[str, str, str]:
    return (
        EventKind.WARNING,
        Reason.TASK_FAILED,
        f"task {call.name} ({call.call_id}) failed: {info.get('type')}: {info.get('message')}",
    )
