"""A shape compiled into one checker: strings checked joined, nesting past what one function
holds, and source written from the declaration alone."""

from __future__ import annotations

from typing import Any

from piwheels import protocols
from piwheels.codec import Int, ListOf, Shape
from piwheels.shape_compiler import MAX_INLINE_DEPTH, checker_source
from sample_shapes import PAIR, ROW, Pair, refusal


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
