"""The words of a run's life on Kubernetes, each defined once.

Every run phase, task state, policy step, task outcome and condition reason the
operator, the drivers and the task pods write into WorkflowRun status (or read
back) is a member of one of these enums. They are ``StrEnum``s: a member is the
string the API stores, so it goes into a body, compares with what a watch event
holds and serialises as JSON without conversion. The CRDs' enums are generated
from them (through :mod:`flux.k8s.models`).
"""

from __future__ import annotations

from enum import StrEnum

from flux.engine.policy import Step as Step  # the policy's steps; a task pod runs one
from flux.events import ExecutionState


class Phase(StrEnum):
    """Where a run stands (``status.phase``)."""

    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
# The phases a run is in while the operator still works on it.
ACTIVE_PHASES = (Phase.PENDING, Phase.RUNNING, Phase.PAUSED)
# The phase of a run whose replayed history ends in each state.
PHASE_OF_STATE = {
    ExecutionState.CREATED: Phase.PENDING,
    ExecutionState.RUNNING: Phase.RUNNING,
    ExecutionState.PAUSED: Phase.PAUSED,
    ExecutionState.COMPLETED: Phase.SUCCEEDED,
    ExecutionState.FAILED: Phase.FAILED,
    ExecutionState.CANCELLED: Phase.CANCELLED,
}


class TaskState(StrEnum):
    """Where a task call stands (``status.tasks[].state``)."""

    RUNNING = "Running"
    RETRYING = "Retrying"
    FALLING_BACK = "FallingBack"
    ROLLING_BACK = "RollingBack"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


# The state of a call whose pod runs each step.
STATE_OF_STEP = {
    Step.ATTEMPT: TaskState.RUNNING,
    Step.FALLBACK: TaskState.FALLING_BACK,
    Step.ROLLBACK: TaskState.ROLLING_BACK,
}
# A call in one of these states holds a pod (or waits for one to start).
POD_STATES = frozenset(STATE_OF_STEP.values())
# The operator settled the call; the driver has still to take the outcome.
FINISHED_TASK_STATES = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})


class Outcome(StrEnum):
    """How a task pod's step ended, as its result reports it."""

    COMPLETED = "completed"
    FAILED = "failed"


class PodPhase(StrEnum):
    """A pod's ``status.phase``, as Kubernetes writes it."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class PodRole(StrEnum):
    """What a pod the operator created is for (its ``flux.dev/role`` label)."""

    TASK = "task"
    DRIVER = "driver"
    SHARED_DRIVER = "shared-driver"


class DriverMode(StrEnum):
    """How a Workflow's runs are driven (``spec.driverMode``)."""

    PER_RUN = "PerRun"  # a driver pod per run
    SHARED = "Shared"  # one driver pod replays all the Workflow's runs


class ConcurrencyPolicy(StrEnum):
    """What a Workflow's schedule does when a run it started is still unfinished
    (``spec.schedules[].concurrencyPolicy``), as a CronJob's."""

    ALLOW = "Allow"  # start the new run too
    FORBID = "Forbid"  # skip the new run
    REPLACE = "Replace"  # cancel the unfinished run, start the new one


class ConditionType(StrEnum):
    READY = "Ready"  # of a Workflow: its spec and source can run
    SCHEDULED = "Scheduled"  # of a Workflow with schedules: all of them can be evaluated
    SUCCEEDED = "Succeeded"  # of a run: how it ended, or where it stands


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """The reasons of conditions and Kubernetes Events, in one CamelCase word.

    The Succeeded condition of a run that has not ended says its phase
    (Pending, Running, Paused); the failures the operator finds itself have
    their own reasons.
    """

    # Workflow Ready
    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    SOURCE_SYNTAX_ERROR = "SourceSyntaxError"
    # Workflow Scheduled (True: VALID)
    INVALID_SCHEDULE = "InvalidSchedule"
    # WorkflowRun Succeeded
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    CANCELLED = "Cancelled"
    WORKFLOW_FAILED = "WorkflowFailed"
    INVALID_INPUT = "InvalidInput"
    INVALID_GRAPH = "InvalidGraph"
    WORKFLOW_NOT_FOUND = "WorkflowNotFound"
    WORKFLOW_INVALID = "WorkflowInvalid"
    DRIVER_FAILED = "DriverFailed"
    REVISION_INVALID = "RevisionInvalid"  # status.revision names no revision of its Workflow
    HISTORY_LOST = "HistoryLost"  # an archived chunk of its history is gone or unreadable
    # Pending or Running, waiting for one of the operator's driver pod slots
    DRIVER_QUEUED = "DriverQueued"
    # Events
    TASK_FAILED = "TaskFailed"
    # Events of a Workflow's schedules
    RUN_SCHEDULED = "RunScheduled"
    SCHEDULE_SKIPPED = "ScheduleSkipped"  # Forbid, an earlier run unfinished
    RUN_REPLACED = "RunReplaced"  # Replace: the unfinished run cancelled
    MISSED_SCHEDULE = "MissedSchedule"  # past the starting deadline
    TOO_MANY_MISSED_TIMES = "TooManyMissedTimes"


# The failures the operator finds itself; the run's error type is the reason.
OPERATOR_REASONS = frozenset(
    {
        Reason.WORKFLOW_NOT_FOUND,
        Reason.WORKFLOW_INVALID,
        Reason.DRIVER_FAILED,
        Reason.REVISION_INVALID,
        Reason.HISTORY_LOST,
    }
)
# Routine progress of every run: the condition says it, an Event would be a write per run.
QUIET_REASONS = frozenset({Reason.PENDING, Reason.RUNNING, Reason.DRIVER_QUEUED})


class EventKind(StrEnum):
    """The type of a Kubernetes Event."""

    NORMAL = "Normal"
    WARNING = "Warning"


# The kind of a run error the operator records when the run cannot start.
CONFIGURATION_ERROR = "configuration"
