"""Building JSON patches (RFC 6902): the only way Flux edits a status in place.

A merge patch cannot say "null" (it drops every null, also inside task
outputs) and cannot guard a write; a JSON patch can do both, with ``test``
operations that fail the whole write when the object is not as the writer saw it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def pointer(*parts: str | int) -> str:
    """A JSON pointer to ``parts`` ("~" and "/" escaped as RFC 6901 says)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class JsonPatch:
    """Operations in the order they are added; ``ops`` is the body to send."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def test(self, path: str, value: Any) -> JsonPatch:
        self.ops.append({"op": "test", "path": path, "value": value})
        return self

    def add(self, path: str, value: Any) -> JsonPatch:
        self.ops.append({"op": "add", "path": path, "value": value})
        return self

    def replace(self, path: str, value: Any) -> JsonPatch:
        self.ops.append({"op": "replace", "path": path, "value": value})
        return self

    def remove(self, path: str) -> JsonPatch:
        self.ops.append({"op": "remove", "path": path})
        return self

    def extend(self, other: JsonPatch) -> JsonPatch:
        self.ops.extend(other.ops)
        return self

    def touches(self, path: str) -> bool:
        """Whether an operation other than a test writes ``path``."""
        return any(op["path"] == path and op["op"] != "test" for op in self.ops)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.ops)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JsonPatch):
            return self.ops == other.ops
        if isinstance(other, list):
            return self.ops == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"JsonPatch({self.ops!r})"
