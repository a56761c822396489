"""The one value codec both executors use: JSON plus a few tagged types.

Values cross process and pod boundaries (inputs, outputs, task arguments,
resume inputs), so everything in history goes through here. Tagged values are
objects with a single ``$flux`` key naming the type, which keeps the stored form
readable with any JSON tool.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import importlib
import json
import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from flux.errors import CodecError

TAG = "$flux"
_PRIMITIVES = (str, int, float, bool, type(None))


def encode(value: Any) -> Any:
    """Return a JSON-compatible structure for ``value`` or raise CodecError."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value:
            return {k: encode(v) for k, v in value.items()}
        return {TAG: "dict", "v": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [encode(v) for v in value]}
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
    if isinstance(value, BaseModel):
        return {
            TAG: "pydantic",
            "type": _type_path(type(value)),
            "v": value.model_dump(mode="json"),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TAG: "dataclass", "type": _type_path(type(value)), "v": fields}
    raise CodecError(f"values of type {_type_path(type(value))} cannot be serialised")


def decode(data: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(data, _PRIMITIVES):
        return data
    if isinstance(data, list):
        return [decode(v) for v in data]
    if isinstance(data, dict):
        tag = data.get(TAG)
        if tag is None:
            return {k: decode(v) for k, v in data.items()}
        return _decode_tagged(tag, data)
    raise CodecError(f"not a Flux-encoded value: {type(data).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    return decode(json.loads(text))


def check(value: Any) -> None:
    """Raise CodecError unless ``value`` round-trips through the codec."""
    encode(value)


def _decode_tagged(tag: str, data: dict[str, Any]) -> Any:
    raw: Any = data.get("v")
    match tag:
        case "dict":
            return {decode(k): decode(v) for k, v in raw}
        case "tuple":
            return tuple(decode(v) for v in raw)
        case "datetime":
            return dt.datetime.fromisoformat(raw)
        case "date":
            return dt.date.fromisoformat(raw)
        case "timedelta":
            days, seconds, micros = raw
            return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
        case "uuid":
            return uuid.UUID(raw)
        case "decimal":
            return Decimal(raw)
        case "bytes":
            return base64.b64decode(raw)
        case "pydantic":
            return _import_type(data["type"]).model_validate(raw)
        case "dataclass":
            cls = _import_type(data["type"])
            return cls(**{k: decode(v) for k, v in raw.items()})
        case _:
            raise CodecError(f"unknown Flux value tag {tag!r}")


def _type_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_type(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CodecError(f"cannot rebuild a value of type {path}: {exc}") from exc
    return obj
