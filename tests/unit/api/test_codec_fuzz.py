"""Fuzzing the decoder (issue 12): arbitrary JSON and tagged objects never import,
never call what the data names, and raise nothing but CodecError."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import datetime as dt
import enum
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flux import codec
from flux.errors import CodecError
from flux.storage import StorageReference

CALLED: list[str] = []


@dataclasses.dataclass
class Tripwire:
    """A dataclass no hint in the fuzzing below declares: building it is a failure."""

    x: Any = None

    def __post_init__(self) -> None:
        CALLED.append("Tripwire")


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Level(enum.Enum):
    LOW = 1
    HIGH = "high"


class Label(BaseModel):
    text: str
    when: dt.date
    points: list[Point] = []


TYPE_PATHS = [
    "os:system",
    "subprocess:Popen",
    "builtins:eval",
    "builtins:exec",
    "builtins:__import__",
    "importlib:import_module",
    "shutil:rmtree",
    "flux.storage:StorageReference",
    "flux.local.storage:LocalFileStorage",
    "no_such_module_xyz:Thing",
    f"{__name__}:Tripwire",
    f"{__name__}:Point",
    f"{__name__}:Level",
    f"{__name__}:Label",
]
TAGS = [
    "dataclass",
    "pydantic",
    "enum",
    "dict",
    "tuple",
    "datetime",
    "date",
    "timedelta",
    "uuid",
    "decimal",
    "bytes",
    "int",
    "float",
]
# Hints a receiving function might declare; none reaches Tripwire.
EXPECTATIONS = [
    codec.PLAIN,
    codec.expect(Any),
    codec.expect(list[Point]),
    codec.expect(dict[str, Label | None]),
    codec.expect(tuple[Level, ...]),
    codec.expect(modules=["os", "subprocess", "builtins", "shutil", "importlib"]),
]

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["\ud800", "a\udcffb", "%%%", "2024-01-01", "nan", "9" * 30])
)


def tagged(children: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"$flux": st.sampled_from(TAGS) | st.text(max_size=6) | st.integers()},
        optional={
            "type": st.sampled_from(TYPE_PATHS) | st.text(max_size=10),
            "v": children,
            "value": children,
        },
    )


json_like = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.just("$flux"), children, max_size=4)
        | tagged(children)
        | st.lists(st.lists(children, min_size=2, max_size=2), max_size=3)  # dict pairs
    ),
    max_leaves=25,
)


def _refuse(name: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"decoding called {name}{args!r}")

    return refuse


@contextlib.contextmanager
def nothing_imported_or_called() -> Iterator[None]:
    before = set(sys.modules)
    CALLED.clear()
    with contextlib.ExitStack() as stack:
        for target, name in [
            (importlib, "import_module"),
            (builtins, "__import__"),
            (builtins, "eval"),
            (builtins, "exec"),
            (os, "system"),
            (subprocess, "Popen"),
            (shutil, "rmtree"),
        ]:
            stack.enter_context(mock.patch.object(target, name, _refuse(f"{target}.{name}")))
        yield
    assert set(sys.modules) == before
    assert CALLED == []


def decode_only_codec_errors(data: Any, expected: codec.Expected) -> None:
    with nothing_imported_or_called(), contextlib.suppress(CodecError):
        codec.decode(data, expected)


@settings(max_examples=400, deadline=None, database=None)
@given(json_like, st.sampled_from(EXPECTATIONS))
def test_decoding_arbitrary_data_imports_and_calls_nothing(
    data: Any, expected: codec.Expected
) -> None:
    decode_only_codec_errors(data, expected)


@settings(max_examples=300, deadline=None, database=None)
@given(tagged(json_like), st.sampled_from(EXPECTATIONS))
def test_decoding_arbitrary_tagged_objects_imports_and_calls_nothing(
    data: dict[str, Any], expected: codec.Expected
) -> None:
    decode_only_codec_errors(data, expected)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.text(max_size=40)
    | st.sampled_from(["[" * 5000, "1e999", "NaN", "9" * 5000, '"\\ud800"', '{"$flux": 1}'])
)
def test_loading_arbitrary_text_raises_only_codec_errors(text: str) -> None:
    with nothing_imported_or_called(), contextlib.suppress(CodecError):
        codec.loads(text, codec.expect(list[Point]))


points = st.builds(Point, st.integers(-5, 5), st.integers(-5, 5))
declared_values = st.recursive(
    points
    | st.sampled_from(Level)
    | st.builds(
        Label, text=st.text(max_size=5), when=st.dates(), points=st.lists(points, max_size=2)
    )
    | st.integers()
    | st.floats()
    | st.decimals(allow_nan=False)
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.tuples(children, children),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None, database=None)
@given(declared_values)
def test_declared_values_round_trip(value: Any) -> None:
    expected = codec.expect(list[Point | Level | Label])
    back = codec.loads(codec.dumps(value), expected)
    assert codec.dumps(back) == codec.dumps(value)  # equal, NaN included
    assert type(back) is type(value)


def test_a_reference_in_data_stays_data() -> None:
    ref = StorageReference("os:system", "k", {"command": "true"})
    with nothing_imported_or_called():
        assert codec.loads(codec.dumps([ref])) == [
            {"backend": "os:system", "key": "k", "config": {"command": "true"}}
        ]
