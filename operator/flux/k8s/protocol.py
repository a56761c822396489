"""What the operator and the pods it starts tell each other.

Task pods get no Kubernetes credentials: their whole input is the
``FLUX_TASK`` environment variable (a :class:`TaskSpec`), and their result
comes back as the container's termination message (a :class:`TaskResult`), or,
when it is larger than a termination message may be, as the last line of the
container log after :data:`RESULT_LOG_MARKER`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TASK_ENV = "FLUX_TASK"
SOURCE_DIR_ENV = "FLUX_SOURCE_DIR"
TERMINATION_LOG = "/dev/termination-log"
# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096
RESULT_LOG_MARKER = "FLUX_RESULT "
# The module name inline Workflow sources are imported as, in every pod.
INLINE_SOURCE_MODULE = "flux_workflow"
SOURCE_MOUNT_PATH = "/flux/source"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Step(StrEnum):
    ATTEMPT = "attempt"
    FALLBACK = "fallback"
    ROLLBACK = "rollback"


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


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


class TaskResult(_Model):
    outcome: Outcome
    value: Any = None
    error: dict[str, Any] | None = None
    in_log: bool = False

    def to_message(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_defaults=True)
