"""A workflow's declared input type is worked out once, not on every run (issue 17)."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import pytest

from flux import WorkflowExecutionContext, codec, workflow
from flux.engine import values


@dataclass
class Order:
    item: str


@workflow
async def ordering(ctx: WorkflowExecutionContext[Order]) -> str:
    return ctx.input.item


def test_the_input_type_is_read_from_the_annotations_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []
    original = typing.get_type_hints

    def counting(obj: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(obj)
        return original(obj, *args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    encoded = codec.encode(Order("tea"))
    for _ in range(3):
        assert codec.decode(encoded, values.workflow_input(ordering)) == Order("tea")
    assert sum(1 for c in calls if c is ordering.func) <= 1
