"""The JSON bodies that pass between the operator's modules, as the API sends them.

``TypedDict``s, not models: they cost nothing at run time (the operator reads
every watch event of 1,000 runs a minute), and mypy checks every key the pure
decisions read or write. Keys are the API's camelCase; every key is optional
(``total=False``) because the API server leaves unset fields out. The pydantic
models in :mod:`flux.k8s.models` say the same shapes for the CRDs.

A body crosses into these types once, where it is read from the API (a kopf body
or a client response is untyped JSON), with :func:`as_run` and its siblings.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from flux.engine.failures import ErrorInfo


class MetaBody(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    generation: int
    resourceVersion: str
    labels: dict[str, str]
    annotations: dict[str, str]
    creationTimestamp: str
    deletionTimestamp: str | None


class ConditionBody(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class ArchiveRefBody(TypedDict):
    """A status entry pointing at a ConfigMap the run owns."""

    configMap: str
    count: int
    resourceVersion: str


class LastErrorBody(TypedDict, total=False):
    type: str
    message: str
    kind: str
    exitCode: int
    reason: str


class PolicyStepBody(TypedDict):
    """A retry, fallback or rollback step, in the form history keeps it."""

    type: str
    value: Any
    time: str


class TaskRecordBody(TypedDict, total=False):
    """One task call's entry in ``status.tasks``."""

    callId: str
    name: str
    state: str  # a TaskState
    step: str  # a Step
    attempts: int
    startTime: str
    finishTime: str
    pod: str | None
    podStarts: int
    nextAttemptAt: str | None
    lastError: LastErrorBody
    infrastructureRetries: int
    triggerError: ErrorInfo
    output: Any
    outputRef: ArchiveRefBody
    error: ErrorInfo
    cancelling: bool
    steps: list[PolicyStepBody]


class HistoryEventBody(TypedDict, total=False):
    """One event of ``status.history`` (see :func:`flux.k8s.history.event_to_status`)."""

    id: int
    type: str  # an EventType
    sourceId: str
    name: str
    time: str
    value: Any


class DriverStatusBody(TypedDict, total=False):
    starts: int
    failures: int
    pod: str | None
    lastFailure: str | None
    shared: bool
    queued: bool


class RunErrorBody(TypedDict, total=False):
    type: str
    message: str
    kind: str


class PauseBody(TypedDict, total=False):
    name: str
    output: Any


class ResumeBody(TypedDict, total=False):
    input: Any


class RunStatusBody(TypedDict, total=False):
    """A WorkflowRun's status, or the part of it a reconcile changes."""

    phase: str  # a Phase
    conditions: list[ConditionBody]
    startTime: str
    finishTime: str
    output: Any
    outputRef: ArchiveRefBody
    error: RunErrorBody
    tasks: list[TaskRecordBody]
    taskArchive: list[ArchiveRefBody]
    pause: PauseBody
    resume: ResumeBody | None
    history: list[HistoryEventBody]
    historyArchive: list[ArchiveRefBody]
    driver: DriverStatusBody
    cancelRequested: list[str]
    cancelledAfter: int
    revision: str
    entrypoint: str
    image: str
    imageDigest: str


class WorkflowRefBody(TypedDict, total=False):
    name: str


class RunSpecBody(TypedDict, total=False):
    workflowRef: WorkflowRefBody
    input: Any
    inputFrom: dict[str, Any]
    cancel: bool
    ttlSecondsAfterFinished: int


class RunBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: MetaBody
    spec: RunSpecBody
    status: RunStatusBody


class SecretRefBody(TypedDict):
    secretName: str
    key: str


class TaskDefaultsBody(TypedDict, total=False):
    resources: dict[str, Any]
    nodeSelector: dict[str, str]
    tolerations: list[dict[str, Any]]
    serviceAccountName: str


class ScheduleBody(TypedDict, total=False):
    name: str
    cron: str
    timeZone: str
    input: Any
    concurrencyPolicy: str  # a ConcurrencyPolicy
    startingDeadlineSeconds: int
    suspend: bool


class WorkflowSpecBody(TypedDict, total=False):
    image: str
    entrypoint: str
    source: str
    function: str
    secrets: dict[str, SecretRefBody]
    parallelism: int
    taskDefaults: TaskDefaultsBody
    driverMode: str  # a DriverMode
    homeVolume: dict[str, Any]
    schedules: list[ScheduleBody]
    runTTLSecondsAfterFinished: int


class ScheduleStatusBody(TypedDict, total=False):
    name: str
    lastScheduleTime: str
    nextScheduleTime: str
    sinceTime: str


class WorkflowStatusBody(TypedDict, total=False):
    conditions: list[ConditionBody]
    observedGeneration: int
    schedules: list[ScheduleStatusBody]
    revision: str


class WorkflowBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: MetaBody
    spec: WorkflowSpecBody
    status: WorkflowStatusBody


class ContainerStateBody(TypedDict, total=False):
    waiting: dict[str, str]  # reason, message
    running: dict[str, str]  # startedAt
    terminated: dict[str, Any]  # exitCode, reason, message, startedAt, finishedAt


class ContainerStatusBody(TypedDict, total=False):
    name: str
    state: ContainerStateBody
    image: str
    imageID: str


class PodStatusBody(TypedDict, total=False):
    phase: str  # a PodPhase
    reason: str
    message: str
    conditions: list[ConditionBody]
    containerStatuses: list[ContainerStatusBody]


class PodBody(TypedDict, total=False):
    """A pod as read (the operator's own manifests are built as plain dicts)."""

    metadata: MetaBody
    status: PodStatusBody


def as_run(body: Any) -> RunBody:
    """A WorkflowRun read from the API, as JSON (plain dicts, see models.plain)."""
    return cast(RunBody, body)


def as_workflow(body: Any) -> WorkflowBody:
    return cast(WorkflowBody, body)


def as_pods(bodies: Any) -> list[PodBody]:
    return cast(list[PodBody], bodies)
