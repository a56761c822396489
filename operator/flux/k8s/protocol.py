"""What the operator and the pods it starts tell each other.

Task pods get no Kubernetes credentials: their whole input is the
``FLUX_TASK`` environment variable (a :class:`TaskSpec`), and their result
comes back as the container's termination message (a :class:`TaskResult`), or,
when it is larger than a termination message may be, as the last line of the
container log after :data:`RESULT_LOG_MARKER`.

A batch pod (``task.map(items, batch_size=N)``) runs several calls of one task:
``FLUX_TASK`` then holds a :class:`BatchSpec` (``"kind": "batch"``) and the
result is a :class:`BatchResult` with one :class:`TaskResult` per call,
reported the same way.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flux import codec
from flux.errors import CodecError

# The task runner reads a spec's step and writes its result's outcome by these names.
from flux.k8s.states import Outcome as Outcome
from flux.k8s.states import Step as Step

TASK_ENV = "FLUX_TASK"
# A driver pod's environment: the workflow (module:function), its run and namespace,
# and how long it waits for more work before it exits.
WORKFLOW_ENV = "FLUX_WORKFLOW"
RUN_ENV = "FLUX_RUN"
NAMESPACE_ENV = "FLUX_NAMESPACE"
LINGER_ENV = "FLUX_DRIVER_LINGER_SECONDS"
# Set instead of FLUX_RUN for a shared driver: the Workflow whose runs it serves.
WORKFLOW_NAME_ENV = "FLUX_WORKFLOW_NAME"
# Where file-backed output storage keeps values (mounted from spec.homeVolume).
HOME_ENV = "FLUX_HOME"
SOURCE_DIR_ENV = "FLUX_SOURCE_DIR"
TERMINATION_LOG = "/dev/termination-log"
# Where the task runner writes its termination message instead (tests, local runs).
TERMINATION_LOG_ENV = "FLUX_TERMINATION_LOG"
BATCH_KIND: Literal["batch"] = "batch"
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096
RESULT_LOG_MARKER = "FLUX_RESULT "
# The module name inline Workflow sources are imported as, in every pod.
INLINE_SOURCE_MODULE = "flux_workflow"
SOURCE_MOUNT_PATH = "/flux/source"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TaskSpec(_Model):
    run: str
    call_id: str
    name: str
    task: str = Field(description="module:qualname of the @task object")
    step: Step = Step.ATTEMPT
    attempt: int = 1
    positional: list[Any] = Field(default_factory=list, description="codec-encoded args")
    keywords: dict[str, Any] = Field(default_factory=dict, description="codec-encoded kwargs")
    secrets: list[str] = Field(default_factory=list)


class TaskResult(_Model):
    outcome: Outcome
    value: Any = None
    error: dict[str, Any] | None = None
    in_log: bool = False

    def to_message(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_defaults=True)


class BatchItem(_Model):
    """One call in a batch pod; the fields mean what they mean in :class:`TaskSpec`."""

    call_id: str
    name: str
    step: Step = Step.ATTEMPT
    attempt: int = 1
    positional: list[Any] = Field(default_factory=list, description="codec-encoded args")
    keywords: dict[str, Any] = Field(default_factory=dict, description="codec-encoded kwargs")


class BatchSpec(_Model):
    """Several calls of one task, run one after another in one pod."""

    kind: Literal["batch"] = BATCH_KIND
    run: str
    task: str = Field(description="module:qualname of the @task object")
    secrets: list[str] = Field(default_factory=list)
    timeout: float = Field(
        default=0, ge=0, description="seconds per attempt item (0 = none); not for fallbacks"
    )
    items: list[BatchItem]

    def to_env(self) -> str:
        """The value of ``FLUX_TASK`` for a batch pod."""
        return self.model_dump_json(by_alias=True)


class BatchResult(_Model):
    """The outcome of every call of a batch pod, by call id."""

    kind: Literal["batch"] = BATCH_KIND
    items: dict[str, TaskResult] = Field(default_factory=dict)
    in_log: bool = False

    def to_message(self) -> str:
        body = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        return json.dumps({"kind": BATCH_KIND, **body}, separators=(",", ":"), ensure_ascii=False)


def is_batch(data: Any) -> bool:
    """Whether a decoded ``FLUX_TASK`` value (or result) is of the batch form."""
    return isinstance(data, dict) and (data.get("kind") == BATCH_KIND or "items" in data)


def parse_task_spec(raw: str) -> TaskSpec | BatchSpec:
    """``FLUX_TASK`` → the spec of a single call or of a batch."""
    data = json.loads(raw)
    if is_batch(data):
        return BatchSpec.model_validate(data)
    return TaskSpec.model_validate(data)


def parse_result_json(text: str) -> Any:
    """A pod's result text as strict JSON; ValueError when it is not.

    The task's code runs in that pod and can write anything there: NaN, nesting
    deep enough to exhaust the parser's recursion, ints past Python's digit limit.
    """
    try:
        return codec.parse_json(text)
    except CodecError as exc:
        raise ValueError(f"not a task result: {exc}") from None


def parse_task_result(text: str) -> TaskResult:
    return TaskResult.model_validate(parse_result_json(text))


def parse_batch_result(message: str) -> BatchResult:
    """A batch pod's termination message, or its result log line (marker optional).

    A termination message saying ``inLog: true`` parses to a result with no items:
    the items are then on the log line.
    """
    text = message.strip()
    if text.startswith(RESULT_LOG_MARKER.strip()):
        text = text[len(RESULT_LOG_MARKER.strip()) :].lstrip()
    return BatchResult.model_validate(parse_result_json(text))
