"""Issue 12, item 1: what the engine rebuilds from data, and where the classes come from.

Task pods (``run_step``), stored errors (``to_exception``) and stored output
references (``storage.retrieve``) never import or call what the data names.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux import WorkflowExecutionContext, codec, task, workflow
from flux.engine import values
from flux.engine.failures import describe, error_info, to_exception
from flux.engine.instance import WorkflowInstance
from flux.errors import CodecError, TaskError, WorkflowInputError
from flux.events import ExecutionState
from flux.k8s.pod_view import PodView
from flux.k8s.protocol import Outcome, TaskSpec
from flux.local.storage import LocalFileStorage
from flux.runtime.task import run_step
from flux.storage import OutputStorage, StorageReference, UnknownBackendError, retrieve
from flux.tasks import pause


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Boom(Exception):
    pass


SEEN: list[Any] = []


@task
def take(declared: Point, anything: Any = None) -> None:
    SEEN.append((declared, anything))


@task
def produce(kind: str) -> Any:
    match kind:
        case "surrogate":
            return "\udcff"
        case "factorial":
            return math.factorial(2000)
        case "nan":
            return float("nan")
        case "deep":
            value: Any = []
            for _ in range(1000):
                value = [value]
            return value
    return kind


def spec(name: str, *positional: Any) -> TaskSpec:
    return TaskSpec(
        run="r",
        call_id=f"{name}#0",
        name=name,
        task=f"{__name__}:{name}",
        positional=list(positional),
    )


def os_system(target: Path) -> dict[str, Any]:
    return {"$flux": "dataclass", "type": "os:system", "v": {"command": f"touch {target}"}}


# ------------------------------------------------------------- task pods


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("surrogate", "a str holding the lone surrogate '\\udcff' at index 0 cannot be stored"),
        ("factorial", "an int with more than 4300 digits cannot be stored"),
        ("deep", "a value nested deeper than 100 levels (at a builtins:list) cannot be stored"),
    ],
)
def test_a_task_pod_fails_the_call_whose_result_cannot_be_stored(kind: str, message: str) -> None:
    result = run_step(spec("produce", kind))
    assert result.outcome == Outcome.FAILED
    assert result.error is not None
    assert result.error["type"] == "CodecError"
    assert (
        "task 'produce' returned a value that cannot be stored: " + message
        in (result.error["message"])
    )
    json.loads(result.to_message())


def test_a_task_pod_reports_nan_as_strict_json() -> None:
    result = run_step(spec("produce", "nan"))
    assert result.outcome == Outcome.COMPLETED
    message = result.to_message()
    assert "NaN" not in message
    assert json.loads(message)["value"] == {"$flux": "float", "v": "nan"}


def test_a_task_pod_rebuilds_only_declared_classes(tmp_path: Path) -> None:
    SEEN.clear()
    target = tmp_path / "pwned"
    point = codec.encode(Point(1, 2))
    result = run_step(spec("take", point, os_system(target)))
    assert result.outcome == Outcome.COMPLETED, result.error
    assert not target.exists()
    [(declared, anything)] = SEEN
    assert declared == Point(1, 2)
    assert anything == {"command": f"touch {target}"}


@task
def bind(spec: TaskSpec, anything: Any = None, *rest: Any, **extra: Any) -> None:
    pass


def test_task_arguments_are_decoded_as_the_parameter_they_bind_to_declares() -> None:
    ts = codec.encode(TaskSpec(run="r", call_id="c", name="n", task="m:t"))
    fields = ts["v"]  # the model's fields, as plain JSON
    point = codec.encode(Point(0, 1))
    args, kwargs = values.decode_arguments(bind, [ts, ts, ts, point], {"other": ts})
    assert isinstance(args[0], TaskSpec)  # declared by ``spec``
    assert args[1:3] == (fields, fields)  # loaded, but not declared where they bind
    assert args[3] == Point(0, 1)  # a class of the task's own module
    assert kwargs == {"other": fields}
    args, kwargs = values.decode_arguments(bind, [], {"spec": ts, "anything": ts})
    assert isinstance(kwargs["spec"], TaskSpec)
    assert kwargs["anything"] == fields
    with pytest.raises(CodecError, match="malformed task arguments"):
        values.decode_arguments(take, {"a": 1}, {})


# ------------------------------------------------------- errors from history


def test_a_stored_error_never_imports_its_module() -> None:
    assert "this" not in sys.modules
    exc = to_exception({"type": "Zen", "module": "this", "message": "m"})
    assert "this" not in sys.modules
    assert isinstance(exc, TaskError)
    assert str(exc) == "Zen: m"


def test_a_stored_error_is_rebuilt_from_loaded_classes_only() -> None:
    assert type(to_exception({"type": "KeyError", "module": "builtins", "message": "k"})) is (
        KeyError
    )
    rebuilt = to_exception({"type": "WorkflowInputError", "module": "flux.errors", "message": "x"})
    assert isinstance(rebuilt, WorkflowInputError)
    assert type(to_exception({"type": "Boom", "module": __name__, "message": "b"})) is Boom
    # Not exceptions, or not classes: a TaskError naming them.
    assert isinstance(to_exception({"type": "system", "module": "os", "message": "ls"}), TaskError)
    assert isinstance(to_exception({"type": "SystemExit", "module": "builtins"}), TaskError)


# ------------------------------------------------------ stored output references


class MemoryStorage(OutputStorage):
    kept: dict[str, Any] = {}

    def store(self, key: str, value: Any) -> StorageReference:
        self.kept[key] = value
        return self.reference(key)

    def retrieve(self, reference: StorageReference) -> Any:
        return self.kept[reference.key]


def test_a_reference_is_read_with_a_backend_class_defined_in_this_process() -> None:
    stored = codec.encode(MemoryStorage().store("k", [1, 2]))
    assert values.read_value(stored) == [1, 2]


def test_a_reference_naming_another_class_imports_nothing() -> None:
    for backend in ("os:system", "this:Zen", f"{__name__}:Point"):
        with pytest.raises(UnknownBackendError, match="not an OutputStorage class defined"):
            retrieve(StorageReference(backend, "k", {}))
        stored = codec.encode(StorageReference(backend, "k", {"command": "true"}))
        with pytest.raises(CodecError, match="cannot read stored output 'k'"):
            values.read_value(stored)
    assert "this" not in sys.modules


def test_a_malformed_reference_is_a_codec_error() -> None:
    backend = f"{__name__}:MemoryStorage"
    stored = codec.encode(StorageReference(backend, "k", {"unexpected": 1}))
    with pytest.raises(CodecError, match="cannot read stored output"):
        values.read_value(stored)
    bad = {"$flux": "dataclass", "type": "flux.storage:StorageReference", "v": {"key": 1}}
    with pytest.raises(CodecError):
        values.read_value(bad)


@workflow
async def waits(ctx: WorkflowExecutionContext[Any]) -> Any:
    return await pause("approve", output=None)


def test_a_reference_given_as_resume_input_is_not_followed() -> None:
    MemoryStorage.kept["secret"] = "the value behind the reference"
    instance = WorkflowInstance(
        waits, "r", [], clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), rng=random.Random(1)
    )
    instance.start()
    instance.resume(StorageReference(f"{__name__}:MemoryStorage", "secret", {}))
    assert instance.state == ExecutionState.COMPLETED
    assert instance.ctx.output == {
        "backend": f"{__name__}:MemoryStorage",
        "key": "secret",
        "config": {},
    }


# ------------------------------------------------------ errors as recorded


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_an_error_is_always_recordable() -> None:
    info = error_info(OSError(2, "gone", "name-\udcff"))
    assert info["message"] == "[Errno 2] gone: 'name-\\udcff'"
    codec.dumps(info)
    assert error_info(Unprintable())["message"] == (
        "(Unprintable with a message that cannot be shown)"
    )


stored_errors = st.recursive(
    st.none() | st.integers() | st.text(max_size=5) | st.floats(),
    lambda children: (
        st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["ExecutionError", "RetryError", "ExecutionTimeoutError"])
                | st.sampled_from(["system", "Popen", "SystemExit", "KeyError", "Zen"])
                | children,
                "module": st.sampled_from(["os", "subprocess", "this", "builtins", "flux.errors"])
                | children,
                "message": children,
                "attempts": children,
                "cause": children,
            },
        )
        | st.lists(children, max_size=2)
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None, database=None)
@given(stored_errors)
def test_any_stored_error_rebuilds_to_an_exception_importing_nothing(info: Any) -> None:
    before = set(sys.modules)
    exc = to_exception(info)
    assert isinstance(exc, Exception)
    assert not isinstance(exc, SystemExit | KeyboardInterrupt)
    assert isinstance(describe(info), str)
    assert set(sys.modules) == before


def test_a_stored_output_comes_back_as_the_classes_expected(tmp_path: Path) -> None:
    stored = codec.encode(LocalFileStorage(tmp_path).store("k", [Point(1, 2)]))
    assert values.read_value(stored, codec.expect(list[Point])) == [Point(1, 2)]
    assert values.read_value(stored) == [{"x": 1, "y": 2}]


def test_a_stored_output_reference_names_no_file_outside_its_storage(tmp_path: Path) -> None:
    (tmp_path / "secret.json").write_text('"the secret"')
    base = tmp_path / "outputs"
    base.mkdir()
    backend = "flux.local.storage:LocalFileStorage"
    for key in ("../secret.json", str(tmp_path / "secret.json")):
        stored = codec.encode(StorageReference(backend, key, {"base_path": str(base)}))
        with pytest.raises(ValueError, match="is not a file name"):
            values.read_value(stored)


# ------------------------------------------- results a task pod writes itself


@pytest.mark.parametrize(
    "message",
    [
        '{"outcome":"completed","value":' + "[" * 5000 + "]" * 5000 + "}",
        '{"outcome":"completed","value":NaN}',
        '{"outcome":"completed","value":' + "9" * 5000 + "}",
        "not json",
    ],
    ids=["deep", "nan", "5000-digits", "garbage"],
)
def test_a_result_a_task_wrote_itself_is_no_result_rather_than_a_crash(message: str) -> None:
    pod = PodView(name="p", phase="Succeeded", exit_code=0, message=message)
    assert pod.result() is None
    batch = PodView(name="p", phase="Succeeded", exit_code=0, message=message, batch_size=2)
    assert batch.for_item("a#0").result() is None
