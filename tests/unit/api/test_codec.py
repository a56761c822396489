"""The value codec (flux.codec): JSON plus tagged types, and nothing else."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

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


def here() -> codec.Expected:
    """The classes of this module, as a workflow or task in it receives them."""
    return codec.expect(modules=[__name__])


def round_trip(value: Any) -> Any:
    """Through the codec and through JSON text, as values cross a process boundary."""
    return codec.loads(codec.dumps(value), here())


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


def test_a_storage_reference_round_trips_where_it_is_expected() -> None:
    ref = StorageReference("flux.local.storage:LocalFileStorage", "k.json", {"base_path": "/x"})
    assert codec.loads(codec.dumps(ref), codec.expect(StorageReference)) == ref
    # Anywhere else it is data: its fields, not a reference the engine would follow.
    assert round_trip(ref) == {
        "backend": "flux.local.storage:LocalFileStorage",
        "key": "k.json",
        "config": {"base_path": "/x"},
    }


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


def test_decoding_rejects_unknown_tags_and_keeps_unexpected_types_plain() -> None:
    with pytest.raises(CodecError, match="unknown Flux value tag 'nope'"):
        codec.decode({"$flux": "nope", "v": 1})
    assert codec.decode({"$flux": "dataclass", "type": "no_such_module:X", "v": {"a": 1}}) == {
        "a": 1
    }
    with pytest.raises(CodecError):
        codec.decode({1, 2})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
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
    | st.integers()
    | st.sampled_from([float("inf"), float("-inf")])
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


# ------------------------------------------------- classes only as declared


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Shipment:
    order: Order
    color: Color | None = None


def tagged(cls: type, fields: dict[str, Any]) -> dict[str, Any]:
    kind = "pydantic" if issubclass(cls, BaseModel) else "dataclass"
    return {"$flux": kind, "type": f"{cls.__module__}:{cls.__qualname__}", "v": fields}


def test_declared_classes_are_rebuilt_through_typing_args_and_fields() -> None:
    shipment = Shipment(
        Order(uuid.UUID(int=1), [("a", 1)], Money(Decimal(1), "EUR"), dt.datetime(2024, 1, 1)),
        Color.RED,
    )
    encoded = codec.encode({"s": [shipment]})
    back = codec.decode(encoded, codec.expect(dict[str, list[Shipment | None]]))
    assert back == {"s": [shipment]}
    assert type(back["s"][0].order.total) is Money  # reached through the fields
    assert codec.decode(codec.encode(Color.BLUE), codec.expect(Literal[Color.RED])) is Color.BLUE
    account = Account(owner=Customer(name="A", since=dt.date(2020, 1, 1)), balance=Decimal(2))
    assert codec.decode(codec.encode(account), codec.expect(Annotated[Account, "x"])) == account


def test_classes_nothing_declares_decode_to_their_fields() -> None:
    encoded = codec.encode([Money(Decimal("1.5"), "EUR"), Color.RED])
    assert codec.decode(encoded) == [{"amount": Decimal("1.5"), "currency": "EUR"}, "red"]
    assert codec.decode(encoded, codec.expect(list[Customer])) == codec.decode(encoded)


def test_registered_classes_are_rebuilt_everywhere() -> None:
    @dataclasses.dataclass
    class Registered:
        n: int

    encoded = codec.encode(Registered(3))
    assert codec.decode(encoded) == {"n": 3}
    assert codec.register(Registered) is Registered
    assert codec.decode(encoded) == Registered(3)
    with pytest.raises(TypeError, match="is not a dataclass"):
        codec.register(Unknown)


def test_a_tag_naming_a_callable_never_calls_it(tmp_path: Path) -> None:
    target = tmp_path / "x"
    hostile = {"$flux": "dataclass", "type": "os:system", "v": {"command": f"touch {target}"}}
    for expected in (codec.PLAIN, codec.expect(Any), codec.expect(modules=["os", __name__])):
        assert codec.decode(hostile, expected) == {"command": f"touch {target}"}
    assert codec.decode({"$flux": "pydantic", "type": "builtins:eval", "v": {"a": "1"}}) == {
        "a": "1"
    }
    assert codec.decode({"$flux": "enum", "type": "subprocess:Popen", "v": ["ls"]}) == ["ls"]
    assert not target.exists()


def test_a_declared_class_that_refuses_the_fields_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match=r"cannot rebuild a value of type .*Money"):
        codec.decode(tagged(Money, {"nope": 1}), here())
    with pytest.raises(CodecError, match=r"cannot rebuild a value of type .*Customer"):
        codec.decode(tagged(Customer, {"name": 1}), here())
    with pytest.raises(CodecError, match=r"cannot rebuild a value of type .*Color"):
        codec.decode({"$flux": "enum", "type": f"{__name__}:Color", "v": "green"}, here())


# ---------------------------------------------------------- malformed values


@pytest.mark.parametrize(
    "data",
    [
        {"$flux": "dataclass", "type": "m:X", "value": {}},  # issue 12: 'value' for 'v'
        {"$flux": "dataclass", "v": {}},
        {"$flux": "dataclass", "type": 3, "v": {}},
        {"$flux": "dataclass", "type": "m:X", "v": [1]},
        {"$flux": "pydantic", "type": "m:X", "v": "s"},
        {"$flux": "enum", "type": "m:X"},
        {"$flux": "bytes", "v": "%%%"},  # issue 12: decoded silently to b''
        {"$flux": "bytes", "v": "é"},
        {"$flux": "bytes", "v": 1},
        {"$flux": "dict", "v": [[1]]},
        {"$flux": "dict", "v": {"a": 1}},
        {"$flux": "dict", "v": [[[1], 2]]},  # an unhashable key
        {"$flux": "tuple", "v": "ab"},
        {"$flux": "datetime", "v": "yesterday"},
        {"$flux": "datetime", "v": 3},
        {"$flux": "date", "v": None},
        {"$flux": "timedelta", "v": [1, 2]},
        {"$flux": "timedelta", "v": [10**12, 0, 0]},
        {"$flux": "timedelta", "v": [True, 0, 0]},
        {"$flux": "uuid", "v": "x"},
        {"$flux": "decimal", "v": "one"},
        {"$flux": "int", "v": "12a"},
        {"$flux": "int", "v": "9" * 4301},
        {"$flux": "float", "v": "1.5"},
        {"$flux": "tuple", "v": [], "extra": 1},
        {"$flux": "nope", "v": 1},
        {"$flux": 1, "v": 1},
        {"$flux": None},
        {"a": {"$flux": "uuid"}},
        {"k": object()},
    ],
    ids=repr,
)
def test_a_malformed_value_is_a_codec_error_and_nothing_else(data: Any) -> None:
    with pytest.raises(CodecError):
        codec.decode(data, here())


# --------------------------------------------------- what the store can take


def test_a_lone_surrogate_is_refused_naming_it() -> None:
    for value in ("\udcff", ["ok", {"name": "a\ud800b"}], {"\udcff": 1}, ("x\udcffy",)):
        surrogate = r"lone surrogate '\\ud[c8][f0][f0]' .*not valid Unicode"
        with pytest.raises(CodecError, match=surrogate):
            codec.encode(value)
    with pytest.raises(CodecError, match="lone surrogate"):
        codec.decode(["\ud800"])


def test_nesting_is_limited_on_the_way_in_and_out() -> None:
    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = [value]
        return value

    assert round_trip(nested(codec.MAX_DEPTH)) == nested(codec.MAX_DEPTH)
    with pytest.raises(CodecError, match=r"nested deeper than 100 levels .*list"):
        codec.encode(nested(1000))
    with pytest.raises(CodecError, match="nested deeper than 100 levels"):
        codec.decode(nested(1000))
    with pytest.raises(CodecError, match="nested deeper"):
        codec.loads("[" * 100_000 + "]" * 100_000)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(CodecError, match="nested deeper"):
        codec.encode(cycle)


def test_ints_past_int64_are_tagged_and_past_the_digit_limit_refused() -> None:
    big = math.factorial(2000)  # 5736 digits
    assert codec.encode(2**63 - 1) == 2**63 - 1
    assert codec.encode(-(2**63)) == -(2**63)
    assert codec.encode(2**63) == {"$flux": "int", "v": str(2**63)}
    assert round_trip(-(10**4299)) == -(10**4299)
    with pytest.raises(CodecError, match="an int with more than 4300 digits cannot be stored"):
        codec.encode([big])
    with pytest.raises(CodecError, match="int with more than 4300 digits"):
        codec.loads("9" * 5000)


def test_nan_and_infinities_are_tagged_and_dumps_is_strict_json() -> None:
    text = codec.dumps([math.nan, math.inf, -math.inf, 1.5])
    assert "NaN" not in text and "Infinity" not in text
    back = codec.loads(text)
    assert math.isnan(back[0]) and back[1:] == [math.inf, -math.inf, 1.5]
    for constant in ("NaN", "Infinity", "-Infinity", "[NaN]"):
        with pytest.raises(CodecError, match="is not JSON"):
            codec.loads(constant)


def test_loads_gives_codec_errors_for_text_that_is_not_json() -> None:
    with pytest.raises(CodecError, match="Expecting value at line 1 column 1"):
        codec.loads("nope")


def test_enums_round_trip_as_declared() -> None:
    assert round_trip(Color.RED) is Color.RED
    assert round_trip({"c": (Color.BLUE,)}) == {"c": (Color.BLUE,)}
