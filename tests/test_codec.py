"""The shapes of piwheels.codec: what they accept, convert and refuse, and what a refusal says.

Each shape has two checkers, its own ``take`` (which walks the declaration and says where a
bad value is) and a function compiled from the declaration (``check``, ``validate``; see
test_shape_compiler.py). These tests pin the edges; tests/fuzz/test_fuzz_codec.py has both
agree on generated values.
"""

from __future__ import annotations

import enum
from typing import Any

import cbor2
import pytest

from piwheels.codec import (
    AnyValue,
    Bool,
    DateTime,
    Float,
    Int,
    ListOf,
    MapOf,
    Optional,
    Reason,
    Record,
    Shape,
    Str,
    Text,
    describe_value,
)
from sample_shapes import GOOD_ROW, NOW, ROW, Pair, Row, refusal


class Colour(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("shape", "value", "error"),
    [
        (Int, 1 << 63, "msg: out of range: 9223372036854775808"),
        (Int, -(1 << 63) - 1, "msg: out of range: -9223372036854775809"),
        (Int, 1 << 64, "msg: out of range"),
        (Int, 10**5000, "msg: out of range: an integer of 16610 bits"),
        (Int, True, "msg: expected int, found True"),
        (Int, 1.0, "msg: expected int, found 1.0"),
        (Int, "1", "msg: expected int, found '1'"),
        (Float, 1 << 1100, "msg: expected a float, found an integer of 1101 bits"),
        (Float, False, "msg: expected float, found False"),
        (DateTime, NOW.replace(tzinfo=None), "msg: a datetime must carry its timezone"),
        (DateTime, NOW.date(), "msg: expected datetime"),
        (Str, "x" * 1025, "msg: longer than 1024 (1025)"),
        (Str, "a\x00b", "msg: unprintable characters in 'a\\x00b'"),
        (Str, "a\u2028b", "msg: unprintable characters"),
        (Str, b"x", "msg: expected str, found b'x'"),
        (Str, None, "msg: expected str, found None"),
        (Bool, 1, "msg: expected bool, found 1"),
        (ListOf(Int, max_items=2), [1, 2, 3], "msg: more than 2 items"),
        (ListOf(Int), [1, True], "msg[1]: expected int, found True"),
        (ListOf(Int), {1: 2}, "msg: expected a list, found a dict of 1 items"),
        (MapOf(Str, Int), {"a": 1, 2: 2}, "msg key: expected str, found 2"),
        (MapOf(Str, Int), {"a": "b"}, "msg['a']: expected int, found 'b'"),
        (MapOf(Str, Int), [("a", 1)], "msg: expected a map, found a list of 1 items"),
        (ROW, GOOD_ROW[:5], "msg: expected 6 fields (name, size, when, load, pairs, note)"),
        (ROW, (*GOOD_ROW, 1), "msg: expected 6 fields"),
        (ROW, "abcdef", "msg: expected 6 fields"),
        (ROW, GOOD_ROW._replace(size=1 << 63), "msg.size: out of range"),
        (ROW, GOOD_ROW._replace(pairs=[("apt", 7)]), "msg.pairs[0].name: expected str"),
        (ROW, GOOD_ROW._replace(pairs=[("apt",)]), "msg.pairs[0]: expected 2 fields"),
        (ROW, GOOD_ROW._replace(pairs=[["a", "b"]] * 5), "msg.pairs: more than 4 items"),
        (ROW, GOOD_ROW._replace(note="\x1b[31m"), "msg.note: unprintable characters"),
    ],
    ids=lambda value: value.describe() if isinstance(value, Shape) else describe_value(value),
)
def test_what_is_refused_and_what_the_refusal_says(shape: Shape, value: Any, error: str) -> None:
    assert refusal(shape, value).startswith(error)


def test_the_edges_of_what_is_accepted() -> None:
    assert Int.check((1 << 63) - 1, "") == (1 << 63) - 1
    assert Int.check(-(1 << 63), "") == -(1 << 63)  # 64 bits long, but it fits
    assert Str.check("x" * 1024, "") == "x" * 1024
    assert Str.check("é ü 日本", "") == "é ü 日本"
    assert Str.check(Colour.RED, "") is Colour.RED  # a subclass: taken as it is
    assert Text.check("\x00" * 2000, "") == "\x00" * 2000  # a log is not one line
    converted = Float.check(3, "")
    assert converted == 3.0 and type(converted) is float
    assert Reason.check("x" * 2000, "") == "x" * 1021 + "..."
    assert Optional(Int).check(None, "") is None
    assert AnyValue().check(cbor2.undefined, "") is cbor2.undefined


def test_values_come_back_as_the_receiving_code_wants_them() -> None:
    wire = ["foo", 3, NOW, 1, [["apt", "libc6"], ["apt", "libc6"]], None]
    row = ROW.check(wire, "")
    assert type(row) is Row and row == GOOD_ROW._replace(load=1.0)
    assert type(row.load) is float
    assert type(row.pairs) is frozenset and all(type(pair) is Pair for pair in row.pairs)
    assert ListOf(Int).check((1, 2), "") == [1, 2]
    assert type(ListOf(Int).check((1, 2), "")) is list
    assert Record([Int, Str]).check([1, "a"], "") == (1, "a")
    assert MapOf(Str, ListOf(Int)).check({"a": (1,)}, "") == {"a": [1]}
    assert ROW.validate(GOOD_ROW, "") is None


def test_a_record_may_leave_its_optional_fields_off_the_end() -> None:
    shape = Record([Int, Str, Optional(Int)], required=2)
    assert shape.check([1, "a"], "") == (1, "a", None)
    assert shape.check([1, "a", 2], "") == (1, "a", 2)
    assert refusal(shape, [1]) == "msg: expected 2 to 3 fields (0, 1, 2), found a list of 1 items"
    assert refusal(shape, [1, "a", 2, 3]).startswith("msg: expected 2 to 3 fields")
