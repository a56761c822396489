"""The value codec (flux.codec): JSON plus tagged types, and nothing else."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from flux import codec
from flux.errors import CodecError
from flux.storage import StorageReference


@dataclasses.dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str


@dataclasses.dataclass
class Order:
    id: uuid.UUID
    lines: list[tuple[str, int]]
    total: Money
    placed: dt.datetime


class Customer(BaseModel):
    name: str
    since: dt.date
    tags: list[str] = []


class Account(BaseModel):
    owner: Customer
    balance: Decimal


def round_trip(value: Any) -> Any:
    """Through the codec and through JSON text, as values cross a process boundary."""
    return codec.loads(codec.dumps(value))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        2.5,
        "text é ✓",
        [],
        {},
        [1, [2, [3]]],
        {"a": {"b": [None, False]}},
        dt.datetime(2024, 5, 17, 12, 30, 1, 123456, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 17, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(2024, 5, 17, 12, 30),
        dt.date(2024, 2, 29),
        dt.timedelta(days=-1, seconds=3, microseconds=9),
        dt.timedelta(0),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("12.3400"),
        Decimal("-0.000001"),
        Decimal("1E+30"),
        b"",
        b"\x00\x01\xfe\xff",
        (),
        (1, (2, "three")),
        Money(Decimal("9.99"), "EUR"),
        Customer(name="Ada", since=dt.date(2020, 1, 1), tags=["vip"]),
        {1: "int key", (2, 3): "tuple key", "s": "str key"},
        {"$flux": "a user key that looks like a tag"},
    ],
    ids=repr,
)
def test_values_round_trip(value: Any) -> None:
    back = round_trip(value)
    assert back == value
    assert type(back) is type(value)


def test_nested_structures_keep_every_type() -> None:
    order = Order(
        id=uuid.UUID(int=5),
        lines=[("apple", 3), ("pear", 1)],
        total=Money(Decimal("4.50"), "EUR"),
        placed=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )
    account = Account(owner=Customer(name="Bo", since=dt.date(2021, 6, 1)), balance=Decimal("1"))
    value = {"order": order, "account": account, "history": [order, (account, b"x")]}
    back = round_trip(value)
    assert back == value
    assert type(back["order"].lines[0]) is tuple
    assert type(back["order"].total.amount) is Decimal
    assert type(back["history"][1]) is tuple


def test_tuples_and_lists_stay_distinct() -> None:
    assert type(round_trip([1, 2])) is list
    assert type(round_trip((1, 2))) is tuple


def test_datetime_and_date_stay_distinct() -> None:
    assert type(round_trip(dt.date(2024, 1, 1))) is dt.date
    assert type(round_trip(dt.datetime(2024, 1, 1))) is dt.datetime


def test_decimal_keeps_its_exact_digits() -> None:
    assert str(round_trip(Decimal("1.10"))) == "1.10"


def test_bytearray_arrives_as_bytes() -> None:
    assert round_trip(bytearray(b"ab")) == b"ab"


def test_a_storage_reference_round_trips() -> None:
    ref = StorageReference("flux.local.storage:LocalFileStorage", "k.json", {"base_path": "/x"})
    assert round_trip(ref) == ref


def test_the_stored_form_is_plain_readable_json() -> None:
    encoded = codec.encode({"when": dt.date(2024, 1, 2), "ids": (1, 2), "raw": b"hi"})
    assert encoded == {
        "when": {"$flux": "date", "v": "2024-01-02"},
        "ids": {"$flux": "tuple", "v": [1, 2]},
        "raw": {"$flux": "bytes", "v": "aGk="},
    }
    assert json.loads(json.dumps(encoded)) == encoded
    assert codec.dumps([1, "a"]) == '[1,"a"]'


class Unknown:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (Unknown(), "test_codec:Unknown"),
        ({1, 2}, "builtins:set"),
        (frozenset(), "builtins:frozenset"),
        (object(), "builtins:object"),
        ([1, {"deep": [Unknown()]}], "test_codec:Unknown"),
        (lambda: None, "builtins:function"),
    ],
)
def test_anything_else_fails_naming_the_type(value: Any, type_name: str) -> None:
    with pytest.raises(CodecError, match=type_name):
        codec.encode(value)
    with pytest.raises(TypeError):  # CodecError is a TypeError
        codec.check(value)


def test_decoding_rejects_unknown_tags_and_types() -> None:
    with pytest.raises(CodecError, match="unknown Flux value tag 'nope'"):
        codec.decode({"$flux": "nope", "v": 1})
    with pytest.raises(CodecError, match="cannot rebuild a value of type no_such_module:X"):
        codec.decode({"$flux": "dataclass", "type": "no_such_module:X", "v": {}})
    with pytest.raises(CodecError):
        codec.decode({1, 2})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        # A plain dict with the tag key is escaped, so it does not encode to itself.
        | st.dictionaries(
            st.text(max_size=5).filter(lambda k: k != codec.TAG), children, max_size=4
        )
    ),
    max_leaves=20,
)
tagged_values = st.recursive(
    json_values
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.timedeltas()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.binary(max_size=16),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.integers() | st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None, database=None)
@given(json_values)
def test_json_values_encode_to_themselves(value: Any) -> None:
    assert codec.encode(value) == value
    assert round_trip(value) == value


@settings(max_examples=150, deadline=None, database=None)
@given(tagged_values)
def test_tagged_values_round_trip(value: Any) -> None:
    assert round_trip(value) == value
