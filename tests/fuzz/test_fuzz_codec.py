"""A shape's compiled checkers and its own take() agree on every value, whatever a peer sends.

``check`` and ``validate`` are functions compiled from a shape's declaration (see
piwheels.shape_compiler); ``take`` walks the declaration and is the reference, which also
explains a refusal. Were the compiled checker to accept what take() refuses, a peer's data would
get past its declared shape; were it to refuse what take() accepts, a good message would cost
both. So for every shape of every protocol, on valid data, on valid data with one part made
hostile, and on anything at all, the compiled checkers are run *without* falling back on
take(), and must accept exactly what take() accepts, giving back equal values of the same types.
"""

from __future__ import annotations

import enum
import math
from datetime import timedelta
from typing import Any

import cbor2
import pytest
from fuzz_messages import (
    HUGE_INTS,
    NOW,
    PROTOCOLS,
    dumps,
    hostile_values,
    mutated_messages,
    valid_data,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piwheels.cbor_bounds import PEER_LOAD_OPTIONS
from piwheels.codec import (
    ListOf,
    MapOf,
    Optional,
    Record,
    Scalar,
    Shape,
    ShapeError,
    _AfterAction,
)
from piwheels.protocols import Protocol
from piwheels.shape_compiler import Checker, compile_checker

AGREEMENT = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Colour(enum.StrEnum):
    RED = "red"


# Values at the edges of what a shape takes, of exactly the types cbor2 gives (fuzz_messages'
# huge ints are of a subclass, which a compiled checker hands to take() untried).
EDGES = (
    *(int(value) for value in HUGE_INTS),
    *(2**63 - 1, -(2**63), 2**31, 2**53, -1, 0, True, False, 1.0, 2.5, math.nan, math.inf),
    *("x" * 1024, "x" * 1025, "é" * 1024, "a\x00", "\x7f", "\u2028", "\t", " ", "", Colour.RED),
    *(b"x", bytearray(b"x"), None, NOW, NOW.replace(tzinfo=None), timedelta(1), NOW.date()),
    *([], (), set(), frozenset(), {}, ["x"] * 300, [1] * 9, [["a", "b"]] * 257),
)
values = st.one_of(hostile_values, st.sampled_from(EDGES))


class Refused(Exception):
    """The compiled checker's own refusal: raised where it would have called take()."""


def _refuse(_value: Any, _where: str) -> Any:
    raise Refused


def label(shape: Shape) -> str:
    """What *shape* takes, bounds included (describe() leaves them out)."""
    if isinstance(shape, Scalar):
        bounds = [f"<={shape.max_len}"] if shape.max_len is not None else []
        bounds += ["clip"] * shape.clip + ["printable"] * shape.printable
        return " ".join([shape.describe(), *bounds])
    if isinstance(shape, Record):
        fields = ", ".join(label(field) for field in shape.fields)
        return f"({fields}){f' {shape.required} required' * (shape.required < len(shape.fields))}"
    if isinstance(shape, Optional):
        return f"{label(shape.inner)} | None"
    if isinstance(shape, ListOf):
        return f"{type(shape).__name__}[{label(shape.item)}, <={shape.max_items}]"
    if isinstance(shape, MapOf):
        return f"{{{label(shape.key)}: {label(shape.value)}}}"
    return shape.describe()


def _all_shapes() -> dict[str, Shape]:
    """Every shape any protocol declares, nested ones too, by what it takes."""
    found: dict[str, Shape] = {}

    def walk(shape: Shape) -> None:
        if found.setdefault(label(shape), shape) is not shape:
            return
        if isinstance(shape, Record):
            for field in shape.fields:
                walk(field)
        elif isinstance(shape, Optional):
            walk(shape.inner)
        elif isinstance(shape, ListOf):
            walk(shape.item)
        elif isinstance(shape, MapOf):
            walk(shape.key)
            walk(shape.value)

    for protocol in PROTOCOLS.values():
        for spec in [*protocol.recv.values(), *protocol.send.values()]:
            if spec is not None:
                walk(spec)
    return found


SHAPES = _all_shapes()
_COMPILED: dict[tuple[int, bool], Checker] = {}


def compiled(shape: Any, build: bool) -> Checker:
    """*shape*'s compiled check (*build*) or validate, which raises Refused rather than explain."""
    key = (id(shape), build)
    if key not in _COMPILED:
        _COMPILED[key] = compile_checker(shape, build, _refuse, "agreement")
    return _COMPILED[key]


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (a NamedTuple is no plain tuple)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    return bool(a == b)


def agree(shape: Any, value: Any, reference: Shape | None = None, *, sender: bool = True) -> None:
    """The compiled checkers of *shape* accept *value* exactly when take() does, and check()
    gives what take() gives. (*reference*: the shape whose take() is the reference, with
    *value* past a message's action for a record after its action.)"""
    if reference is None:
        reference, taken_from = shape, value
    else:
        taken_from = value[1:]
    try:
        expected, accepted = reference.take(taken_from), True
    except ShapeError:
        expected, accepted = None, False
    for build in (True, False) if sender else (True,):
        try:
            got = compiled(shape, build)(value, "")
        except Refused:
            assert not accepted, f"{'check' if build else 'validate'} refused what take() takes"
            continue
        assert accepted, f"{'check' if build else 'validate'} took what take() refuses"
        if build:
            assert same(got, expected), f"check gave {got!r}, take() {expected!r}"


def _parts(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += _parts(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _parts(item, (*path, key))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    step, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: _replaced(v, rest, new) if k == step else v for k, v in value.items()}
    items = [_replaced(v, rest, new) if i == step else v for i, v in enumerate(value)]
    return type(value)(items) if type(value) in (list, tuple) else items


def _as_decoded(value: Any) -> Any:
    """*value* as cbor2 gives it back: tuples (records) as lists."""
    if isinstance(value, list | tuple):
        return [_as_decoded(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_decoded(item) for key, item in value.items()}
    return value


EVERY_SHAPE = pytest.mark.parametrize("name", sorted(SHAPES))


@EVERY_SHAPE
@AGREEMENT
@given(data=st.data())
def test_valid_data_is_taken_alike(name: str, data: st.DataObject) -> None:
    value = data.draw(valid_data(SHAPES[name]), label="value")
    agree(SHAPES[name], value)
    agree(SHAPES[name], _as_decoded(value))


@EVERY_SHAPE
@AGREEMENT
@given(data=st.data())
def test_data_with_one_hostile_part_is_refused_alike(name: str, data: st.DataObject) -> None:
    value = data.draw(valid_data(SHAPES[name]), label="value")
    if data.draw(st.booleans(), label="as decoded"):
        value = _as_decoded(value)
    path = data.draw(st.sampled_from(_parts(value)), label="path")
    agree(SHAPES[name], _replaced(value, path, data.draw(values, label="hostile")))


@EVERY_SHAPE
@AGREEMENT
@given(value=values)
def test_anything_at_all_is_refused_alike(name: str, value: Any) -> None:
    agree(SHAPES[name], value)


RECEIVING = [(name, protocol) for name, protocol in PROTOCOLS.items() if protocol.recv]


@pytest.mark.parametrize(("name", "protocol"), RECEIVING, ids=[name for name, _ in RECEIVING])
@AGREEMENT
@given(data=st.data())
def test_a_record_after_its_action_is_taken_alike(
    name: str, protocol: Protocol, data: st.DataObject
) -> None:
    """What decode() checks a record message with, on messages as a peer's decoder gives them."""
    message = data.draw(mutated_messages(protocol), label="message")
    try:
        decoded = cbor2.loads(dumps(message), **PEER_LOAD_OPTIONS)
    except Exception:  # refused before any shape sees it
        return
    if not (isinstance(decoded, list) and decoded and isinstance(decoded[0], str)):
        return
    spec = protocol.recv.get(decoded[0])
    if isinstance(spec, Record):
        agree(_AfterAction(spec), decoded, spec, sender=False)
