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

import dataclasses
import enum
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

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
# The code revision a driver runs (flux.k8s.revisions): a shared driver serves
# only the runs that recorded it.
REVISION_ENV = "FLUX_REVISION"
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


class ProtocolError(ValueError):
    """A spec or result that is not of the protocol's shape (a ValueError, so that a
    result a task's code wrote can never be more than a failed step)."""


# Plain dataclasses, not pydantic: a task pod parses one spec and writes one
# result, and importing pydantic and building its validators was most of the
# pod's start-up (issue 17). The shapes are small and checked strictly here.
@dataclass(frozen=True)
class TaskSpec:
    run: str
    call_id: str
    name: str
    task: str  # module:qualname of the @task object
    step: Step = Step.ATTEMPT
    attempt: int = 1
    positional: list[Any] = field(default_factory=list)  # codec-encoded args
    keywords: dict[str, Any] = field(default_factory=dict)  # codec-encoded kwargs
    secrets: list[str] = field(default_factory=list)
    # An attempt's deadline in seconds, counted from when its body starts, as the
    # embedded executor counts it; 0: none (fallbacks and rollbacks have none).
    timeout: float = 0

    @classmethod
    def from_json(cls, data: Any) -> TaskSpec:
        return _build(cls, data, "task spec")

    def to_json(self) -> dict[str, Any]:
        return _dump(self)


@dataclass(frozen=True)
class TaskResult:
    outcome: Outcome
    value: Any = None
    error: dict[str, Any] | None = None
    in_log: bool = False

    @classmethod
    def from_json(cls, data: Any) -> TaskResult:
        return _build(cls, data, "task result")

    def to_json(self) -> dict[str, Any]:
        return _dump(self, exclude_defaults=True)

    def to_message(self) -> str:
        return _compact(self.to_json())


@dataclass(frozen=True)
class BatchItem:
    """One call in a batch pod; the fields mean what they mean in :class:`TaskSpec`."""

    call_id: str
    name: str
    step: Step = Step.ATTEMPT
    attempt: int = 1
    positional: list[Any] = field(default_factory=list)
    keywords: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchSpec:
    """Several calls of one task, run one after another in one pod."""

    run: str
    task: str
    items: list[BatchItem]
    kind: Literal["batch"] = BATCH_KIND
    secrets: list[str] = field(default_factory=list)
    # Seconds per attempt item (0 = none); not for fallbacks.
    timeout: float = 0

    def __post_init__(self) -> None:
        if self.timeout < 0:
            raise ProtocolError("batch spec: timeout must be >= 0")

    @classmethod
    def from_json(cls, data: Any) -> BatchSpec:
        return _build(cls, data, "batch spec")

    def to_json(self) -> dict[str, Any]:
        return _dump(self)

    def to_env(self) -> str:
        """The value of ``FLUX_TASK`` for a batch pod."""
        return _compact(self.to_json())


@dataclass(frozen=True)
class BatchResult:
    """The outcome of every call of a batch pod, by call id."""

    kind: Literal["batch"] = BATCH_KIND
    items: dict[str, TaskResult] = field(default_factory=dict)
    in_log: bool = False

    @classmethod
    def from_json(cls, data: Any) -> BatchResult:
        return _build(cls, data, "batch result")

    def to_json(self) -> dict[str, Any]:
        return {"kind": BATCH_KIND, **_dump(self, exclude_defaults=True)}

    def to_message(self) -> str:
        return _compact(self.to_json())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


_T = typing.TypeVar("_T")
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type[_T], data: Any, what: str) -> _T:
    """``cls`` from JSON ``data`` (camelCase or snake_case keys; others ignored),
    every field checked against its annotation; ProtocolError names the field."""
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # _T: a protocol dataclass
        key = _camel(f.name)
        if key in data or f.name in data:
            raw = data[key] if key in data else data[f.name]
            values[f.name] = _convert(hints[f.name], raw, f"{what}: {key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{what}: {key} is required")
    return cls(**values)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if origin is Literal:
        if value not in args:
            raise ProtocolError(f"{where} must be one of {list(args)}, not {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError(f"{where} must be a list")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ProtocolError(f"{where} must be an object")
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = [m.value for m in tp]
            raise ProtocolError(f"{where} must be one of {allowed}, not {value!r}") from None
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type, tp), value, where)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    raise ProtocolError(f"{where} must be {getattr(tp, '__name__', tp)}, not {value!r}")


def _dump(obj: Any, exclude_defaults: bool = False) -> dict[str, Any]:
    """JSON of a protocol dataclass, with camelCase keys."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if exclude_defaults and f.default is not dataclasses.MISSING and value == f.default:
            continue
        factory = f.default_factory
        if exclude_defaults and factory is not dataclasses.MISSING and value == factory():
            continue
        out[_camel(f.name)] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        exclude = isinstance(value, TaskResult)
        return _dump(value, exclude_defaults=exclude)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def is_batch(data: Any) -> bool:
    """Whether a decoded ``FLUX_TASK`` value (or result) is of the batch form."""
    return isinstance(data, dict) and (data.get("kind") == BATCH_KIND or "items" in data)


def parse_task_spec(raw: str) -> TaskSpec | BatchSpec:
    """``FLUX_TASK`` → the spec of a single call or of a batch."""
    data = json.loads(raw)
    if is_batch(data):
        return BatchSpec.from_json(data)
    return TaskSpec.from_json(data)


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
    return TaskResult.from_json(parse_result_json(text))


def parse_batch_result(message: str) -> BatchResult:
    """A batch pod's termination message, or its result log line (marker optional).

    A termination message saying ``inLog: true`` parses to a result with no items:
    the items are then on the log line.
    """
    text = message.strip()
    if text.startswith(RESULT_LOG_MARKER.strip()):
        text = text[len(RESULT_LOG_MARKER.strip()) :].lstrip()
    return BatchResult.from_json(parse_result_json(text))
