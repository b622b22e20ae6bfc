"""A record of every kind of field, and how to read a refusal: shared by the tests of the
shapes (test_codec.py) and of their compiled checkers (test_shape_compiler.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from piwheels.codec import DateTime, Float, Int, Optional, Record, SetOf, Shape, ShapeError, Str

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


def refusal(shape: Shape, value: Any) -> str:
    """What check() says of *value*, which must be refused, and that validate() says the same."""
    with pytest.raises(ShapeError) as checked:
        shape.check(value, "msg")
    with pytest.raises(ShapeError) as validated:
        shape.validate(value, "msg")
    assert str(checked.value) == str(validated.value)
    return str(checked.value)
