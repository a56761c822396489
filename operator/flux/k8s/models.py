"""The Workflow and WorkflowRun custom resources, as pydantic models.

The CRDs in ``crds/`` are generated from these models (:mod:`flux.k8s.crds`),
so every description here is what ``kubectl explain`` shows, and a field
missing here is a field the API server prunes. Status fields therefore cover
everything the operator and the driver write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from flux.events import EventType, ExecutionEvent
from flux.k8s.history import event_from_status, event_to_status
from flux.k8s.kube.resources import RUNS
from flux.k8s.labels import REVISION_PATTERN
from flux.k8s.states import (
    ConcurrencyPolicy,
    ConditionStatus,
    DriverMode,
    Phase,
    Step,
    TaskState,
)
from flux.pod_settings import QUANTITY_PATTERN

API_VERSION = RUNS.api_version
ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Five fields or one of the shorthands CronJobs accept; the operator parses the rest.
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
# A schedule's name is part of the names of the runs it starts.
SCHEDULE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A Job's ttlSecondsAfterFinished is an int32 too (some 68 years).
MAX_TTL_SECONDS = 2**31 - 1

# The API server admits any JSON value here and keeps it unpruned; without a
# type, scalars and lists are admitted too (workflow inputs and outputs are any JSON).
FreeForm = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]
FreeFormObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)],
    WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# Cross-field rules of a Workflow spec. The API server checks the CEL form
# (x-kubernetes-validations); WorkflowSpec checks the same rules in Python, so
# a spec that reached the operator some other way is caught with the same words.
ONE_OF_ENTRYPOINT_SOURCE = "set exactly one of spec.entrypoint and spec.source"
FUNCTION_WITH_SOURCE = "spec.function is required with spec.source, and only with it"
# The volume sources spec.homeVolume may use. The operator creates the pods, so a
# Workflow author who may not create pods must not get through it what pods could
# reach otherwise: a projected service-account token (API credentials in task
# pods), a Secret or ConfigMap by name, the node's files (hostPath), ...
HOME_VOLUME_SOURCES = ("persistentVolumeClaim", "emptyDir", "ephemeral")
HOME_VOLUME_KINDS = "spec.homeVolume must be exactly one volume source of: " + ", ".join(
    HOME_VOLUME_SOURCES
)
WORKFLOW_SPEC_RULES: list[JsonValue] = [
    {"rule": "has(self.entrypoint) != has(self.source)", "message": ONE_OF_ENTRYPOINT_SOURCE},
    {"rule": "has(self.source) == has(self.function)", "message": FUNCTION_WITH_SOURCE},
]


class Condition(_Model):
    """One aspect of the object's state (the shape of metav1.Condition)."""

    type: str = Field(min_length=1, description="What the condition is about: Ready, Succeeded.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        default="", description="Why the condition has this status, in one CamelCase word."
    )
    message: str = Field(default="", description="Why the condition has this status, for people.")
    last_transition_time: dt.datetime | None = Field(
        default=None, description="When the status last changed."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the condition was computed for."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="The latest observations of the object's state, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]


class ObjectMeta(_Model):
    """The parts of metadata the operator reads."""

    name: str = Field(default="", description="Name of the object.")
    namespace: str = Field(default="", description="Namespace of the object.")
    uid: str = Field(default="", description="UID of the object.")
    generation: int | None = Field(default=None, description="Generation of the spec.")
    resource_version: str = Field(default="", description="Version of the stored object.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the object.")
    deletion_timestamp: dt.datetime | None = Field(
        default=None, description="Set when the object is being deleted."
    )


# The API server owns metadata's schema: a CRD may say no more than that it is an
# object (a description there makes the schema non-structural).
Metadata = Annotated[
    ObjectMeta, WithJsonSchema({"type": "object"}), Field(default_factory=ObjectMeta)
]
ApiVersion = Annotated[
    str, Field(default=API_VERSION, description="The schema version: flux.dev/v1alpha1.")
]


# ---------------------------------------------------------------------- Workflow


class SecretRef(_Model):
    """Where the value of one secret a task requests comes from."""

    secret_name: str = Field(min_length=1, description="Name of a Secret in the namespace.")
    key: str = Field(min_length=1, description="Key within that Secret.")


class Resources(_Model):
    """Compute resources of a task container (as in a container's resources)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Resources reserved, e.g. cpu: 100m, memory: 128Mi."
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="Most the container may use, e.g. memory: 512Mi."
    )


class TaskDefaults(_Model):
    """Pod settings for every task pod of the workflow's runs."""

    resources: Resources | None = Field(default=None, description="Compute resources.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels a task pod must run on."
    )
    tolerations: list[FreeFormObject] = Field(
        default_factory=list, description="Tolerations, as in a pod spec."
    )
    service_account_name: str | None = Field(
        default=None,
        description="Service account of task pods; its token is never mounted.",
    )


class Schedule(_Model):
    """Runs the operator starts on a cron schedule, as a Kubernetes CronJob starts Jobs."""

    name: str = Field(
        min_length=1,
        max_length=40,
        pattern=SCHEDULE_NAME_PATTERN,
        description="Names the schedule; its runs are named <workflow>-<name>-<unix minutes>.",
    )
    cron: str = Field(
        pattern=CRON_PATTERN,
        description="When runs start: 5 cron fields (minute hour day-of-month month "
        "day-of-week) or @yearly, @monthly, @weekly, @daily, @hourly.",
    )
    time_zone: str | None = Field(
        default=None,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description="The IANA time zone the cron fields are read in, e.g. Europe/Berlin; UTC "
        "if unset.",
    )
    input: FreeForm = Field(default=None, description="The input of every run: any JSON value.")
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="When a run of this schedule is still unfinished at the next time: Allow "
        "(start another), Forbid (skip this time) or Replace (cancel it, start the new one).",
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description="How late a run may still start (after an operator outage, or while "
        "Forbid skips); a time missed by more is dropped. Unset: no deadline.",
    )
    suspend: bool = Field(
        default=False,
        description="Start no runs; runs already started go on. Missed times are judged by "
        "the deadline when it is lifted.",
    )


class WorkflowSpec(_Model):
    """The workflow's code, image and task pod defaults."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": WORKFLOW_SPEC_RULES})

    image: str | None = Field(
        default=None,
        min_length=1,
        description="Image that runs the driver and task pods; the operator's default if unset.",
    )
    entrypoint: str | None = Field(
        default=None,
        pattern=ENTRYPOINT_PATTERN,
        description="The @workflow function in the image, as module:function. Set this or source.",
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        description="An inline Python module defining the workflow and its tasks; mounted "
        "into every pod. Set this or entrypoint.",
    )
    function: str | None = Field(
        default=None,
        pattern=IDENTIFIER_PATTERN,
        description="The @workflow function defined in source (required with source).",
    )
    secrets: dict[str, SecretRef] = Field(
        default_factory=dict,
        description="Secrets tasks may request, by name: where each one's value is kept.",
    )
    parallelism: int | None = Field(
        default=None,
        ge=1,
        description="Most task pods of one run at a time; if unset, the operator's cap "
        "(FLUX_MAX_TASK_PODS_PER_RUN, 256), which also bounds it.",
    )
    task_defaults: TaskDefaults | None = Field(
        default=None, description="Pod settings for task pods."
    )
    driver_mode: DriverMode = Field(
        default=DriverMode.PER_RUN,
        description="PerRun: each run gets its own driver pod (isolation). Shared: one driver "
        "pod replays all the runs of this Workflow (throughput: no pod start per run). Fixed "
        "for a run when it starts.",
    )
    run_ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_SECONDS,
        alias="runTTLSecondsAfterFinished",
        description="Default spec.ttlSecondsAfterFinished of this Workflow's runs: seconds "
        "after a run finishes (Succeeded, Failed or Cancelled) before the operator deletes "
        "it with its pods and ConfigMaps. Unset: the operator's default "
        "(FLUX_RUN_TTL_SECONDS_AFTER_FINISHED; unset there too: runs are kept).",
    )
    home_volume: FreeFormObject | None = Field(
        default=None,
        description="A pod volume source mounted as FLUX_HOME in the driver and every task "
        "pod, where file-backed output storage (LocalFileStorage) keeps values that other "
        "pods read back: one of persistentVolumeClaim, emptyDir or ephemeral.",
    )
    schedules: list[Schedule] | None = Field(
        default=None,
        max_length=20,
        description="Runs the operator starts on cron schedules.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _one_way_to_name_the_code(self) -> Self:
        if (self.entrypoint is None) == (self.source is None):
            raise PydanticCustomError("workflow_spec", ONE_OF_ENTRYPOINT_SOURCE)
        if (self.source is None) != (self.function is None):
            raise PydanticCustomError("workflow_spec", FUNCTION_WITH_SOURCE)
        if self.home_volume is not None and (
            len(self.home_volume) != 1 or next(iter(self.home_volume)) not in HOME_VOLUME_SOURCES
        ):
            found = ", ".join(sorted(self.home_volume)) or "none"
            raise PydanticCustomError(
                "workflow_spec",
                "{rule} (found: {found})",
                {"rule": HOME_VOLUME_KINDS, "found": found},
            )
        names = [s.name for s in self.schedules or ()]
        if len(set(names)) != len(names):
            # The API server refuses these too (a list map keyed by name).
            raise PydanticCustomError("workflow_spec", "spec.schedules: names must be unique")
        return self


class ScheduleStatus(_Model):
    """Where one of the Workflow's schedules stands."""

    name: str = Field(description="The schedule's name.")
    last_schedule_time: dt.datetime | None = Field(
        default=None, description="The time the schedule last started a run for."
    )
    next_schedule_time: dt.datetime | None = Field(
        default=None, description="The next time it starts one (unset while suspended or invalid)."
    )
    since_time: dt.datetime | None = Field(
        default=None,
        description="When the schedule appeared: times before it are never due.",
    )


class WorkflowStatus(_Model):
    """What the operator found when it checked the workflow."""

    conditions: Conditions
    schedules: list[ScheduleStatus] | None = Field(
        default=None, description="One entry per schedule in spec.schedules."
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation last checked."
    )
    revision: str | None = Field(
        default=None,
        pattern=REVISION_PATTERN,
        description="The code revision a run starting now records (flux.k8s.revisions): "
        "a hash of the inline source and function, or of the image and entrypoint.",
    )


class Workflow(_Model):
    """A workflow: its code (in the image or inline), image and task pod defaults."""

    api_version: ApiVersion
    kind: str = Field(default="Workflow", description="The resource kind: Workflow.")
    metadata: Metadata
    spec: WorkflowSpec = Field(description="The workflow's code, image and task pod defaults.")
    status: WorkflowStatus = Field(
        default_factory=WorkflowStatus, description="Set by the operator."
    )


# ------------------------------------------------------------------- WorkflowRun


class WorkflowRef(_Model):
    """The Workflow a run executes."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec.workflowRef is immutable"}
            ]
        }
    )

    name: str = Field(min_length=1, description="Name of a Workflow in the run's namespace.")


class ConfigMapKeyRef(_Model):
    """A key of a ConfigMap in the run's namespace."""

    name: str = Field(min_length=1, description="The ConfigMap's name.")
    key: str = Field(min_length=1, description="The key whose value is used.")


class InputSource(_Model):
    """Where a large input is kept instead of spec.input."""

    config_map_key_ref: ConfigMapKeyRef = Field(
        description="A ConfigMap key holding the input as JSON text."
    )


# spec.cancel is a request, not a state: once made it stays (level-triggered, so a
# restarted operator or driver still sees it), and unsetting it cannot un-cancel.
CANCEL_IS_FINAL = "spec.cancel cannot be unset once true"


class WorkflowRunSpec(_Model):
    """Which workflow to run, with what input."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(oldSelf.cancel) || !oldSelf.cancel"
                    " || (has(self.cancel) && self.cancel)",
                    "message": CANCEL_IS_FINAL,
                }
            ]
        }
    )

    # "input or inputFrom, not both" is checked by the driver: CEL cannot see
    # spec.input, a free-form field.
    workflow_ref: WorkflowRef = Field(description="The Workflow to run.")
    input: FreeForm = Field(default=None, description="The workflow's input: any JSON value.")
    input_from: InputSource | None = Field(
        default=None,
        description="Read the input from a ConfigMap key instead (for inputs too large to keep "
        "in the run; the run stays within its size budget).",
    )
    cancel: bool | None = Field(
        default=None,
        description="Set to true to cancel the run: the tasks in flight stop and their "
        "rollbacks run, then the run ends Cancelled (condition Succeeded=False, reason "
        "Cancelled, and an Event). A run that has finished is left as it is. Cannot be "
        "unset once true. kubectl patch workflowrun NAME --type=merge "
        '-p \'{"spec":{"cancel":true}}\'',
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_SECONDS,
        alias="ttlSecondsAfterFinished",
        description="Seconds after the run finishes (Succeeded, Failed or Cancelled, from "
        "status.finishTime) before the operator deletes it with its pods and ConfigMaps, as "
        "a Job's field of that name. Unset: the Workflow's spec.runTTLSecondsAfterFinished, "
        "then the operator's default; 0: deleted as soon as it finishes.",
    )


class ArchiveRef(_Model):
    """A ConfigMap owned by the run holding part of it (gzip-compressed JSON)."""

    config_map: str = Field(description="The ConfigMap's name.")
    count: int = Field(ge=0, description="How many items it holds.")
    resource_version: str = Field(
        description="Its resourceVersion when stored; a reader checks it is unchanged."
    )


class RunError(_Model):
    """Why a run failed."""

    type: str = Field(description="Error type, e.g. ValueError or WorkflowNotFound.")
    message: str = Field(description="What went wrong.")
    kind: str | None = Field(
        default=None, description="code, timeout, infrastructure, unstartable or configuration."
    )


class LastError(_Model):
    """How a task's last attempt failed."""

    type: str | None = Field(default=None, description="Error type.")
    message: str | None = Field(default=None, description="What went wrong.")
    exit_code: int | None = Field(default=None, description="Exit code of the task container.")
    reason: str | None = Field(default=None, description="Pod or container reason, if any.")
    kind: str | None = Field(
        default=None, description="code, timeout, infrastructure or unstartable."
    )


class PolicyStep(_Model):
    """A retry, fallback or rollback step, as the run's history will record it."""

    type: EventType = Field(description="Event type, e.g. TASK_RETRY_STARTED.")
    value: FreeForm = Field(default=None, description="The event's payload.")
    time: dt.datetime | None = Field(
        default=None,
        description="When the step happened; history records the event at this time.",
    )


class TaskRecord(_Model):
    """Progress of one task call: its attempts, current pod and outcome."""

    call_id: str = Field(min_length=1, description="The call's id in the history (name#n).")
    name: str = Field(description="The task's name.")
    state: TaskState = Field(description="Where the call stands.")
    step: Step = Field(
        default=Step.ATTEMPT,
        description="What the current pod runs: attempt, fallback or rollback.",
    )
    attempts: int = Field(default=0, ge=0, description="Attempts started so far.")
    start_time: dt.datetime | None = Field(default=None, description="When the call started.")
    finish_time: dt.datetime | None = Field(default=None, description="When the call ended.")
    pod: str | None = Field(default=None, description="The pod running the current step.")
    pod_starts: int = Field(default=0, ge=0, description="Pods started for the call so far.")
    next_attempt_at: dt.datetime | None = Field(
        default=None, description="When the next attempt starts (while Retrying)."
    )
    last_error: LastError | None = Field(
        default=None, description="How the last failed step failed."
    )
    infrastructure_retries: int = Field(
        default=0, ge=0, description="Steps restarted because their pod was lost."
    )
    trigger_error: FreeFormObject | None = Field(
        default=None, description="The error that started the fallback or rollback."
    )
    output: FreeForm = Field(default=None, description="The task's output, once Completed.")
    output_ref: ArchiveRef | None = Field(
        default=None, description="Where an output too large for the run is kept instead."
    )
    error: FreeFormObject | None = Field(
        default=None, description="The task's error (with its causes), once Failed."
    )
    cancelling: bool | None = Field(
        default=None, description="The workflow gave up on the call; its rollback runs."
    )
    steps: list[PolicyStep] | None = Field(
        default=None,
        description="Retry, fallback and rollback steps so far; the driver copies them into "
        "the history before the call's outcome.",
    )


class Pause(_Model):
    """The pause the run waits at."""

    name: str = Field(description="Name given to pause().")
    output: FreeForm = Field(default=None, description="The value given to pause() as output.")


class Resume(_Model):
    """A request to resume a paused run (patch it with --subresource=status)."""

    input: FreeForm = Field(default=None, description="What pause() returns: any JSON value.")


class HistoryEvent(_Model):
    """One event of the run's durable history."""

    id: int = Field(default=0, ge=0, description="Position in the history, from 1.")
    type: EventType = Field(description="Event type, e.g. TASK_STARTED.")
    source_id: str = Field(description="Call id for task events, run name for workflow events.")
    name: str = Field(description="Task or workflow name.")
    time: dt.datetime = Field(description="When the event was recorded.")
    value: FreeForm = Field(default=None, description="The event's payload (codec-encoded JSON).")

    def to_event(self) -> ExecutionEvent:
        return event_from_status(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_event(cls, event: ExecutionEvent) -> HistoryEvent:
        return cls.model_validate(event_to_status(event))


class DriverStatus(_Model):
    """The run's driver pods, so that a failing driver backs off."""

    starts: int = Field(default=0, ge=0, description="Driver pods started so far.")
    failures: int = Field(default=0, ge=0, description="Driver pods failed in a row.")
    pod: str | None = Field(default=None, description="The current driver pod.")
    last_failure: dt.datetime | None = Field(
        default=None, description="When a driver pod last failed."
    )
    shared: bool | None = Field(
        default=None, description="The run is driven by its Workflow's shared driver pod."
    )
    queued: bool | None = Field(
        default=None,
        description="The run waits for a driver pod: the operator's limit of per-run driver "
        "pods at once (setting FLUX_MAX_DRIVER_PODS) is reached.",
    )


class WorkflowRunStatus(_Model):
    """Progress and outcome of the run, kept by the operator and the driver."""

    # Enums are never optional (crds refuses them: the API server's validator
    # checks a null against the enum); a default stands for "not set".
    phase: Phase = Field(default=Phase.PENDING, description="Where the run stands.")
    conditions: Conditions
    start_time: dt.datetime | None = Field(default=None, description="When the run started.")
    finish_time: dt.datetime | None = Field(default=None, description="When the run ended.")
    output: FreeForm = Field(default=None, description="The workflow's output, once Succeeded.")
    output_ref: ArchiveRef | None = Field(
        default=None, description="Where an output too large for the run is kept instead."
    )
    error: RunError | None = Field(default=None, description="Why the run failed, once Failed.")
    tasks: list[TaskRecord] = Field(
        default_factory=list,
        description="One record per task call in play; settled ones move to taskArchive.",
    )
    task_archive: list[ArchiveRef] | None = Field(
        default=None, description="Settled task records moved out, oldest first."
    )
    pause: Pause | None = Field(default=None, description="The pause the run waits at.")
    resume: Resume | None = Field(
        default=None,
        description="Set to resume a Paused run: kubectl patch fxrun NAME --subresource=status "
        '--type=merge -p \'{"status":{"resume":{"input":...}}}\'.',
    )
    history: list[HistoryEvent] = Field(
        default_factory=list,
        description="The newest part of the run's durable history (written by the driver); "
        "older events are in historyArchive.",
    )
    history_archive: list[ArchiveRef] | None = Field(
        default=None, description="Older history events moved out, oldest first."
    )
    driver: DriverStatus | None = Field(default=None, description="The run's driver pods.")
    cancel_requested: list[str] | None = Field(
        default=None,
        description="Task calls the workflow gave up on (written by the driver); the operator "
        "stops their pods and runs their rollbacks.",
    )
    cancelled_after: int | None = Field(
        default=None,
        ge=0,
        description="The id of the last history event before the driver took up spec.cancel "
        "(written by the driver); a replay cancels the workflow at that point.",
    )
    revision: str | None = Field(
        default=None,
        pattern=REVISION_PATTERN,
        description="The code revision the run executes, recorded by the operator when it "
        "starts and never changed: every pod of the run uses it, whatever the Workflow "
        "says now.",
    )
    entrypoint: str | None = Field(
        default=None,
        max_length=512,
        description="The module:function of the revision, recorded with it.",
    )
    image: str | None = Field(
        default=None,
        max_length=512,
        description="The image the run's pods run, recorded with the revision.",
    )
    image_digest: str | None = Field(
        default=None,
        max_length=512,
        description="The image's digest as the node reported it for the run's first pod "
        "(status.containerStatuses[].imageID), where it reports one.",
    )


class WorkflowRun(_Model):
    """One execution of a Workflow: input in spec, progress and output in status."""

    api_version: ApiVersion
    kind: str = Field(default="WorkflowRun", description="The resource kind: WorkflowRun.")
    metadata: Metadata
    spec: WorkflowRunSpec = Field(description="Which workflow to run, with what input.")
    status: WorkflowRunStatus = Field(
        default_factory=WorkflowRunStatus, description="Set by the operator and the driver."
    )


# ------------------------------------------------------------------------ helpers


def plain(value: Any) -> Any:
    """``value`` with every mapping a dict: kopf hands out read-only mapping views."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def to_json(model: BaseModel) -> dict[str, Any]:
    """A model as the API takes it: camelCase keys, unset optional fields left out."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data
