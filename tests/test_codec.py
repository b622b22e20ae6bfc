"""The shapes' compiled checkers: what they accept, convert and refuse, and what a refusal says.

Each shape has two checkers, its own ``take`` (which walks the declaration and says where a
bad value is) and a function compiled from the declaration (``check``, ``validate``). These
tests pin the edges; tests/fuzz/test_fuzz_codec.py has both agree on generated values.
"""

from __future__ import annotations

import enum
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import cbor2
import pytest

from piwheels import protocols
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
    SetOf,
    Shape,
    ShapeError,
    Str,
    Text,
    describe_value,
)
from piwheels.message_codec import ProtocolError, decode, encode
from piwheels.shape_compiler import MAX_INLINE_DEPTH, checker_source

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Pair(NamedTuple):
    tool: str
    name: str


class Row(NamedTuple):
    name: str
    size: int
    when: datetime
    load: float
    pairs: frozenset[Pair]
    note: str | None


PAIR = Record([Str, Str], Pair)
ROW = Record([Str, Int, DateTime, Float, SetOf(PAIR, max_items=4), Optional(Str)], Row)
GOOD_ROW = Row("foo", 3, NOW, 0.5, frozenset({Pair("apt", "libc6")}), None)


class Colour(enum.StrEnum):
    RED = "red"


def refusal(shape: Shape, value: Any) -> str:
    """What check() says of *value*, which must be refused, and that validate() says the same."""
    with pytest.raises(ShapeError) as checked:
        shape.check(value, "msg")
    with pytest.raises(ShapeError) as validated:
        shape.validate(value, "msg")
    assert str(checked.value) == str(validated.value)
    return str(checked.value)


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


def test_strings_checked_joined_are_each_still_held_to_their_bounds() -> None:
    # two fields of 1,000 characters join longer than either may be: each is then checked alone
    long = Pair("x" * 1000, "y" * 1000)
    assert PAIR.check(list(long), "") == long
    assert refusal(PAIR, ["x" * 1000, "y" * 1025]) == "msg.name: longer than 1024 (1025)"
    assert refusal(PAIR, ["x", "\x07"]) == "msg.name: unprintable characters in '\\x07'"
    assert refusal(PAIR, [None, "y"]) == "msg.tool: expected str, found None"
    assert refusal(PAIR, [b"x", "y"]) == "msg.tool: expected str, found b'x'"


def test_shapes_nested_past_what_one_function_holds_still_check() -> None:
    depth = MAX_INLINE_DEPTH // 2 + 4  # a list's code is two levels deep: past the limit
    shape: Shape = Int
    value: Any = 1
    for _ in range(depth):
        shape, value = ListOf(shape), [value]
    assert shape.check(value, "") == value
    innermost = value
    for _ in range(depth - 1):
        innermost = innermost[0]
    innermost[0] = True
    assert refusal(shape, value) == f"msg{'[0]' * depth}: expected int, found True"


def test_a_checker_is_written_from_the_declaration_alone() -> None:
    source = checker_source(ROW, build=True).text()
    # what is checked: the shape's own types and bounds, by name; never a value from data
    assert "1024" in source and ".isprintable()" in source and "bit_length() > 63" in source
    assert "foo" not in source
    compile(source, "<test>", "exec")


def test_every_declared_shape_compiles() -> None:
    for protocol in vars(protocols).values():
        if isinstance(protocol, protocols.Protocol):
            for spec in [*protocol.recv.values(), *protocol.send.values()]:
                if spec is not None:
                    checker_source(spec, build=True)
                    checker_source(spec, build=False)


# -- whole messages -----------------------------------------------------------------------------

SLAVE = reversed(protocols.slave_driver)
MASTER = protocols.slave_driver
STATS = ("IDLE", NOW, 1, 2, 3, 4, 0.5, 40.0)


@pytest.mark.parametrize(
    ("tag", "content"),
    [
        *((2, b"\x01"), (3, b"\x01"), (28, "x"), (29, 0), (1, 0), (1004, "2026-01-01")),
        *((55799, 1), (43000, [1.0, 2.0]), (25, 0), (256, "x"), (35, "a+")),
    ],
)
def test_tags_no_message_carries_are_refused_in_a_small_message_too(tag: int, content: Any) -> None:
    """A message of at most PEER_MAX_ITEMS bytes is not walked first: cbor2 refuses the tag."""
    raw = cbor2.dumps(["IDLE", cbor2.CBORTag(tag, content), 1, 2, 3, 4, 0.5, 40.0])
    assert len(raw) < 100
    with pytest.raises(ProtocolError, match=rf"a CBOR tag no message carries \({tag}\)"):
        decode(MASTER, raw)


def test_a_decoder_is_not_used_again_after_a_message_it_did_not_finish() -> None:
    good = cbor2.dumps(list(STATS))
    for bad in (good + b"\x00", good[:-3], good + b"\xff\xff", b"\x9f\x01\xff", b"\xc2\x41\x01"):
        with pytest.raises(ProtocolError):
            decode(MASTER, bad)
        assert decode(MASTER, good) == ("IDLE", protocols.slave_driver.recv["IDLE"].take(STATS[1:]))


def test_sets_and_durations_of_a_peer_decode_as_they_always_did() -> None:
    built = ["BUILT", True, cbor2.CBORTag(2001, [0, 5, 7]), "log"]
    files = [["f.whl", 1, "h", "f", "1", "py3", "none", "any"]]
    deps = cbor2.CBORTag(258, [["apt", "libc6"], ["apt", "libc6"], ["pip", "x"]])
    raw = cbor2.dumps([*built, [[*files[0], deps, None]]])
    _, result = decode(MASTER, raw)
    assert result.duration == timedelta(seconds=5, microseconds=7)
    assert result.files[0].dependencies == frozenset({Pair("apt", "libc6"), Pair("pip", "x")})
    for parts in ({1: 5}, [0, "5", 0], [5], [0, 1.5, 0], [10**9, 0, 0]):
        bad = cbor2.dumps([*built[:2], cbor2.CBORTag(2001, parts), "log", []])
        with pytest.raises(ProtocolError, match=r"tag 2001|text string"):
            decode(MASTER, bad)


def test_messages_decode_alike_in_many_threads_at_once() -> None:
    """Encoders and decoders are reused: no two threads may ever share one."""
    messages = [(NOW + timedelta(seconds=n), n, n, n, n, n / 2, 40.0) for n in range(50)]
    raws = [encode(SLAVE, "IDLE", protocols.slave_driver.recv["IDLE"].take(m)) for m in messages]
    wrong: list[Any] = []

    def work() -> None:
        for _ in range(20):
            for message, raw in zip(messages, raws, strict=True):
                _, back = decode(MASTER, raw)
                if tuple(back) != message:
                    wrong.append(back)
                with pytest.raises(ProtocolError, match="junk"):
                    decode(MASTER, raw + b"\x00")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong
