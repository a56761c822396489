"""The one value codec both executors use: JSON plus a few tagged types.

Values cross process and pod boundaries (inputs, outputs, task arguments,
resume inputs), so everything in history goes through here. Tagged values are
objects with a ``$flux`` key naming the type, which keeps the stored form
readable with any JSON tool.

Decoding never imports, looks up or calls anything the data names. Data comes
from users (CLI and ``spec.input``, resume input) and from task outputs, so a
tagged dataclass, pydantic model or enum is rebuilt only as a class the
*receiving code* declares, passed in as :class:`Expected`:

* classes reachable from a type hint (``expect(list[Order])``: ``typing`` args
  of lists, dicts, tuples, unions, ``Optional``, ``Annotated``, ``Literal``, and
  the field types of dataclasses and pydantic models, recursively);
* the top-level classes of modules of the run's own code, already loaded
  (``expect(modules=[...])``: looked up in ``sys.modules``, never imported);
* classes registered with :func:`register`, everywhere.

A tagged value of any other type decodes to plain JSON: its decoded fields as a
``dict`` (an enum: its decoded value). Malformed tagged values, unknown tags and
anything else this module cannot take raise :class:`~flux.errors.CodecError`
and nothing else.

What the store can take, and so what :func:`encode` accepts: strings that are
valid Unicode (no lone surrogates, as ``os.listdir`` returns for file names
that are not UTF-8), values nested at most :data:`MAX_DEPTH` containers deep,
ints of at most :data:`MAX_INT_DIGITS` digits (those outside int64 are tagged,
since the Kubernetes API server keeps only int64 and float64 exactly), and any
float (NaN and the infinities are tagged). :func:`dumps` writes strict JSON.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import json
import re
import sys
import typing
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, TypeVar

from flux.errors import CodecError

TAG = "$flux"
# Containers (lists, dicts, tuples, dataclasses, models) within one value.
MAX_DEPTH = 100
# Python's default limit for int <-> str conversion: every process can read them back.
MAX_INT_DIGITS = 4300
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# 2**_MAX_INT_BITS has more than MAX_INT_DIGITS digits: refused before str() is tried.
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.33) + 8
_INT_TEXT = re.compile(rf"-?[0-9]{{1,{MAX_INT_DIGITS}}}")
_SPECIAL_FLOATS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
_CLASS_TAGS = ("dataclass", "pydantic", "enum")

C = TypeVar("C", bound=type)

_registered: dict[str, type] = {}


def register(cls: C) -> C:
    """Let every decode rebuild ``cls`` (a dataclass, pydantic model or enum).

    For classes no declared type reaches, such as values behind ``Any`` that
    live outside the workflow's and task's own modules. Usable as a decorator.
    """
    if not _is_rebuildable(cls):
        raise TypeError(f"{_type_path(cls)} is not a dataclass, pydantic model or Enum")
    _registered[_type_path(cls)] = cls
    return cls


@dataclasses.dataclass(frozen=True)
class Expected:
    """The classes one decode may rebuild, by ``module:qualname`` (see :func:`expect`)."""

    classes: Mapping[str, type] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def find(self, path: str) -> type | None:
        return self.classes.get(path) or _registered.get(path)


PLAIN = Expected()


def expect(*hints: Any, modules: Iterable[str] = ()) -> Expected:
    """The classes reachable from ``hints`` and the top-level ones of loaded ``modules``."""
    found: dict[str, type] = {}
    seen: set[int] = set()
    keep: list[Any] = []  # ids in ``seen`` stay unique while their objects live
    for hint in hints:
        _walk(hint, found, seen, keep)
    for name in modules:
        module = sys.modules.get(name)
        if module is None:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, type) and obj.__module__ == name:
                _walk(obj, found, seen, keep)
    return Expected(MappingProxyType(found))


# ------------------------------------------------------------------ encoding


def encode(value: Any) -> Any:
    """Return a JSON-compatible structure for ``value`` or raise CodecError."""
    return _encode(value, 0)


def dumps(value: Any) -> str:
    """``value`` as strict JSON text (no NaN, no lone surrogates)."""
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check(value: Any) -> None:
    """Raise CodecError unless ``value`` round-trips through the codec."""
    encode(value)


def _encode(value: Any, depth: int) -> Any:
    kind = type(value)
    # The common JSON types first, without a call: histories are mostly these.
    if kind is str:
        if not value.isascii():
            _check_text(value)
        return value
    if kind is int:
        return value if _INT64_MIN <= value <= _INT64_MAX else _encode_int(value)
    if value is None or kind is bool or (kind is float and value - value == 0):
        return value
    if isinstance(value, str):
        _check_text(value)
        return value
    if isinstance(value, int):
        return _encode_int(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {TAG: "float", "v": "nan" if value != value else repr(value)}
        return value
    depth += 1
    if depth > MAX_DEPTH:
        raise CodecError(
            f"a value nested deeper than {MAX_DEPTH} levels (at a {_type_path(type(value))}) "
            "cannot be stored"
        )
    if isinstance(value, list):
        return [_encode(v, depth) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {_key(k): _encode(v, depth) for k, v in value.items()}
        return {
            TAG: "dict",
            "v": [[_encode(k, depth), _encode(v, depth)] for k, v in value.items()],
        }
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [_encode(v, depth) for v in value]}
    if isinstance(value, dt.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, dt.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    if isinstance(value, Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, bytes | bytearray):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, enum.Enum):
        return {TAG: "enum", "type": _type_path(type(value)), "v": _encode(value.value, depth)}
    if _is_model_class(type(value)):
        try:
            dumped = value.model_dump(mode="json")
        except Exception as exc:  # pydantic's serialisation errors, and the model's own
            raise CodecError(f"{_type_path(type(value))} cannot be serialised: {exc}") from None
        fields = {k: _encode(v, depth) for k, v in dumped.items()}
        return {TAG: "pydantic", "type": _type_path(type(value)), "v": fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name), depth) for f in dataclasses.fields(value)}
        return {TAG: "dataclass", "type": _type_path(type(value)), "v": fields}
    raise CodecError(f"values of type {_type_path(type(value))} cannot be serialised")


def _key(key: str) -> str:
    if not key.isascii():
        _check_text(key)
    return key


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # ascii(): the message itself must be storable.
        bad = ascii(text[exc.start])
        raise CodecError(
            f"a str holding the lone surrogate {bad} at index {exc.start} cannot be stored "
            "(not valid Unicode; for example a file name that is not UTF-8)"
        ) from None


def _encode_int(value: int) -> Any:
    if _INT64_MIN <= value <= _INT64_MAX:
        return value
    if value.bit_length() > _MAX_INT_BITS:
        raise CodecError(f"an int with more than {MAX_INT_DIGITS} digits cannot be stored")
    try:
        text = str(int(value))
    except ValueError:  # this process set a lower int_max_str_digits
        raise CodecError(
            f"an int with more than {MAX_INT_DIGITS} digits cannot be stored"
        ) from None
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise CodecError(
            f"an int of {len(text.lstrip('-'))} digits cannot be stored "
            f"(at most {MAX_INT_DIGITS} digits)"
        )
    return {TAG: "int", "v": text}


# ------------------------------------------------------------------ decoding


def decode(data: Any, expected: Expected = PLAIN) -> Any:
    """Inverse of :func:`encode`; custom classes only as ``expected`` allows."""
    return _decode(data, expected, 0)


def parse_json(text: str) -> Any:
    """Strict JSON text to plain JSON values; CodecError when it is not that."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise CodecError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise CodecError(f"it is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # an int past Python's int <-> str digit limit
        raise CodecError(f"it holds an int with more than {MAX_INT_DIGITS} digits") from None


def loads(text: str, expected: Expected = PLAIN) -> Any:
    return decode(parse_json(text), expected)


def _refuse_constant(name: str) -> Any:
    raise CodecError(f"{name} is not JSON (write it as a tagged float)")


def _decode(data: Any, expected: Expected, depth: int) -> Any:
    kind = type(data)
    if kind is str:
        if not data.isascii():
            _check_text(data)
        return data
    if data is None or kind is int or kind is float or kind is bool:
        return data
    if isinstance(data, str):
        _check_text(data)
        return data
    if isinstance(data, bool | int | float):
        return data
    depth += 1
    if depth > MAX_DEPTH:
        raise CodecError(f"a value nested deeper than {MAX_DEPTH} levels cannot be decoded")
    if isinstance(data, list):
        return [_decode(v, expected, depth) for v in data]
    if isinstance(data, dict):
        if TAG in data:
            return _decode_tagged(data, expected, depth)
        _check_keys(data)
        return {k: _decode(v, expected, depth) for k, v in data.items()}
    raise CodecError(f"not a Flux-encoded value: {type(data).__name__}")


def _decode_fields(data: Any, expected: Expected, depth: int, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise CodecError(f"malformed Flux value: {what} must be a JSON object")
    _check_keys(data)
    return {k: _decode(v, expected, depth) for k, v in data.items()}


def _check_keys(data: dict[Any, Any]) -> None:
    try:
        if all(map(str.isascii, data)):  # at C speed: most of history is objects
            return
    except TypeError:
        raise CodecError("malformed Flux value: an object has a key that is not a str") from None
    for key in data:
        _check_text(key)


def _decode_tagged(data: dict[Any, Any], expected: Expected, depth: int) -> Any:
    tag = data[TAG]
    if not isinstance(tag, str):
        raise CodecError(f"malformed Flux value: {TAG} must be a str, not {type(tag).__name__}")
    needed = {TAG, "type", "v"} if tag in _CLASS_TAGS else {TAG, "v"}
    if tag in _DECODERS or tag in _CLASS_TAGS:
        if set(data) != needed:
            raise CodecError(
                f"malformed Flux value (tag {tag!r}): expected the keys "
                f"{sorted(needed)}, got {sorted(map(str, data))}"
            )
    else:
        raise CodecError(f"unknown Flux value tag {_short(tag)!r}")
    raw = data["v"]
    if tag in _CLASS_TAGS:
        path = data["type"]
        if not isinstance(path, str):
            raise CodecError(f"malformed Flux value (tag {tag!r}): 'type' must be a str")
        return _decode_class(tag, path, raw, expected, depth)
    try:
        return _DECODERS[tag](raw, expected, depth)
    except CodecError:
        raise
    except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
        raise CodecError(f"malformed Flux value (tag {tag!r}): {exc}") from None


def _decode_class(tag: str, path: str, raw: Any, expected: Expected, depth: int) -> Any:
    cls = expected.find(path)
    if tag == "enum":
        value = _decode(raw, expected, depth)
        if cls is None or not issubclass(cls, enum.Enum):
            return value
        return _rebuild(path, cls, (value,), {})
    fields = _decode_fields(raw, expected, depth, f"the 'v' of a {tag}")
    if tag == "pydantic":
        if cls is None or not _is_model_class(cls):
            return fields
        return _rebuild(path, cls.model_validate, (fields,), {})  # type: ignore[attr-defined]
    if cls is None or not dataclasses.is_dataclass(cls):
        return fields
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    # Fields outside __init__ are derived by the class itself.
    return _rebuild(path, cls, (), {k: v for k, v in fields.items() if k in init})


def _rebuild(
    path: str, build: typing.Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Call the declared class (never anything the data names) with the stored fields."""
    try:
        return build(*args, **kwargs)
    except Exception as exc:  # the declared class refused the stored fields
        if _is_validation(exc):
            problems = exc.errors()[:3]  # type: ignore[attr-defined]
            raise CodecError(f"cannot rebuild a value of type {path}: {problems}") from None
        raise CodecError(
            f"cannot rebuild a value of type {path}: {type(exc).__name__}: {exc}"
        ) from None


def _text(raw: Any, what: str) -> str:
    if not isinstance(raw, str):
        raise CodecError(f"malformed Flux value: 'v' of a {what} must be a str")
    return raw


def _items(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise CodecError(f"malformed Flux value: 'v' of a {what} must be a list")
    return raw


def _decode_dict(raw: Any, expected: Expected, depth: int) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for pair in _items(raw, "dict"):
        if not isinstance(pair, list) or len(pair) != 2:
            raise CodecError("malformed Flux value: a dict's items must be [key, value] pairs")
        key = _decode(pair[0], expected, depth)
        try:
            result[key] = _decode(pair[1], expected, depth)
        except TypeError as exc:  # an unhashable key (CodecError is a TypeError too)
            if isinstance(exc, CodecError):
                raise
            raise CodecError(
                f"malformed Flux value: a dict key of type {type(key).__name__}"
            ) from None
    return result


def _decode_tuple(raw: Any, expected: Expected, depth: int) -> tuple[Any, ...]:
    return tuple(_decode(v, expected, depth) for v in _items(raw, "tuple"))


def _decode_timedelta(raw: Any, expected: Expected, depth: int) -> dt.timedelta:
    parts = _items(raw, "timedelta")
    if len(parts) != 3 or not all(type(p) is int for p in parts):
        raise CodecError("malformed Flux value: a timedelta is [days, seconds, microseconds]")
    days, seconds, micros = parts
    return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _decode_bytes(raw: Any, expected: Expected, depth: int) -> bytes:
    text = _text(raw, "bytes")
    if not text.isascii():
        raise CodecError("malformed Flux value: 'v' of a bytes must be base64")
    return base64.b64decode(text, validate=True)


def _decode_int(raw: Any, expected: Expected, depth: int) -> int:
    text = _text(raw, "int")
    if not _INT_TEXT.fullmatch(text):
        raise CodecError(
            f"malformed Flux value: 'v' of an int must be at most {MAX_INT_DIGITS} decimal digits"
        )
    return int(text)


def _decode_float(raw: Any, expected: Expected, depth: int) -> float:
    text = _text(raw, "float")
    if text not in _SPECIAL_FLOATS:
        raise CodecError("malformed Flux value: 'v' of a float must be nan, inf or -inf")
    return _SPECIAL_FLOATS[text]


def _decode_decimal(raw: Any, expected: Expected, depth: int) -> Decimal:
    try:
        return Decimal(_text(raw, "decimal"))
    except InvalidOperation:
        raise CodecError("malformed Flux value: 'v' of a decimal is not a number") from None


_DECODERS: dict[str, typing.Callable[[Any, Expected, int], Any]] = {
    "dict": _decode_dict,
    "tuple": _decode_tuple,
    "datetime": lambda raw, _e, _d: dt.datetime.fromisoformat(_text(raw, "datetime")),
    "date": lambda raw, _e, _d: dt.date.fromisoformat(_text(raw, "date")),
    "timedelta": _decode_timedelta,
    "uuid": lambda raw, _e, _d: uuid.UUID(_text(raw, "uuid")),
    "decimal": _decode_decimal,
    "bytes": _decode_bytes,
    "int": _decode_int,
    "float": _decode_float,
}


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


# -------------------------------------------------------------- class lookup


def _type_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_rebuildable(cls: Any) -> bool:
    return isinstance(cls, type) and (
        dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum) or _is_model_class(cls)
    )


def _is_model_class(cls: Any) -> bool:
    """Whether ``cls`` is a pydantic model class. pydantic is not imported for this:
    when nothing has imported it, no value or class can be one, and a task pod
    whose code does not use it starts without it (issue 17: it was most of the
    pod's import time)."""
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel)


def _is_validation(exc: Exception) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(exc, pydantic.ValidationError)


def _walk(hint: Any, found: dict[str, type], seen: set[int], keep: list[Any]) -> None:
    """Collect the rebuildable classes a type hint reaches (never resolving names)."""
    if id(hint) in seen or len(seen) > 10_000:
        return
    seen.add(id(hint))
    keep.append(hint)
    supertype = getattr(hint, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        _walk(supertype, found, seen, keep)
        return
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        for value in typing.get_args(hint):
            if isinstance(value, enum.Enum):
                _walk(type(value), found, seen, keep)
        return
    if origin is not None:
        # list[X], dict[K, V], X | None, Annotated[X, ...], Sequence[X], Model[X], ...
        for arg in typing.get_args(hint):
            _walk(arg, found, seen, keep)
        if _is_rebuildable(origin):
            _walk(origin, found, seen, keep)
        return
    if not isinstance(hint, type):
        return
    if _is_rebuildable(hint):
        found[_type_path(hint)] = hint
    for field_hint in _field_hints(hint):
        _walk(field_hint, found, seen, keep)


def _field_hints(cls: type) -> list[Any]:
    if _is_model_class(cls):
        return [f.annotation for f in cls.model_fields.values()]  # type: ignore[attr-defined]
    if not (dataclasses.is_dataclass(cls) or typing.is_typeddict(cls)):
        return []
    try:
        return list(typing.get_type_hints(cls).values())
    except Exception:  # names the class's module cannot resolve: use what is concrete
        if dataclasses.is_dataclass(cls):
            return [f.type for f in dataclasses.fields(cls)]
        return []
