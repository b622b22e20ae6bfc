"""CBOR as the transport reads and writes it: the hooks for the types CBOR lacks, and the bounds
a peer's message must keep to before cbor2 builds what it describes.

A peer's message is refused unless it is one CBOR item (nothing after it) of at most a given
number of items, nested at most :data:`MAX_DEPTH` deep, with definite lengths and only the tags
messages carry. cbor2 keeps the depth, the lengths and the tags itself; the count it cannot,
and a message of *n* bytes holds *n* items at most, so only a message longer than its bound on
items has its items counted first, by walking their heads (:func:`check_structure`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import cbor2

from piwheels.codec import describe_value

# timedelta has no CBOR type. It travels as tag 2001 holding [days, seconds, microseconds], its
# own exact parts, as the original piwheels sends it. RFC 9581's duration (tag 1002) is a map
# keyed by integers, and a peer's maps may have only text keys (see PEER_LOAD_OPTIONS).
DURATION_TAG = 2001
# The deepest message (an Oracle's rows, a BUILT's dependency) nests 6 deep.
MAX_DEPTH = 16


class MalformedCBOR(ValueError):
    """Bytes that are no CBOR, or CBOR beyond the bounds a message keeps to."""


def encode_extra(encoder: cbor2.CBOREncoder, value: Any) -> None:
    """cbor2's ``default``: the types messages carry that CBOR has no type for."""
    if isinstance(value, timedelta):
        encoder.encode(cbor2.CBORTag(DURATION_TAG, [value.days, value.seconds, value.microseconds]))
    elif isinstance(value, frozenset | set):
        encoder.encode(list(value))
    else:
        raise cbor2.CBOREncodeTypeError(f"cannot send a {type(value).__name__}")


def decode_tag(tag: cbor2.CBORTag, _immutable: bool) -> Any:
    """cbor2's ``tag_hook``, for the tags it has no decoder of its own for."""
    if tag.tag == DURATION_TAG:
        return decode_duration(tag.value, _immutable)
    raise MalformedCBOR(f"unexpected CBOR tag {describe_value(tag.tag)}")


def decode_duration(parts: Any, _immutable: bool) -> timedelta:
    """The timedelta of a duration's tag (see :data:`DURATION_TAG`) holding *parts*."""
    if isinstance(parts, list | tuple) and len(parts) == 3 and all(type(p) is int for p in parts):
        try:
            return timedelta(*parts)
        except OverflowError:
            pass
    raise MalformedCBOR(f"unexpected CBOR tag {DURATION_TAG}")


def _set_members(members: Any, _immutable: bool) -> Any:
    # A set travels as the array of its members; the shape that takes it makes the frozenset,
    # having checked them (cbor2 would make a set first, hashing every member).
    return members


# Tags cbor2 would decode itself, bar those messages carry: 0 (a datetime as text) and 258 (a
# set: cbor2 writes frozensets so). Each is refused: bignums (2, 3) are integers no field
# holds, and of which Python cannot even make a str() past 4,300 digits; shared references
# (28, 29) make a structure whose walk is exponential in its size; the rest are types no
# message carries (1004 a date, 43000 a complex number, 55799 marks any item as CBOR).
REFUSED_TAGS = (
    *(1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 260, 261),
    *(1004, 43000, 55799),
)
ALLOWED_TAGS = frozenset({0, 258, DURATION_TAG})


def _refusal(tag: int) -> Callable[[Any, bool], Any]:
    def refuse(_value: Any, _immutable: bool) -> Any:
        raise MalformedCBOR(f"a CBOR tag no message carries ({tag})")

    return refuse


LOAD_OPTIONS: dict[str, Any] = {
    "tag_hook": decode_tag,
    "semantic_decoders": {tag: _refusal(tag) for tag in REFUSED_TAGS},
    "max_depth": MAX_DEPTH,
    "allow_indefinite": False,
}
# A peer's messages, which only ever meet shapes: cbor2 looks each tag up in semantic_decoders
# before it decodes it itself, and a tag not found there costs a KeyError (~250 ns). Their maps
# (a BUILT's dependencies) are keyed by text, whose hashes Python salts: keys of other types
# (arrays, floats) can be made to share one hash, and a map of 5,000 such keys in 70 kB costs
# 12 million comparisons to build (0.2 s), so cbor2 refuses them as it reads.
PEER_LOAD_OPTIONS = LOAD_OPTIONS | {
    "semantic_decoders": LOAD_OPTIONS["semantic_decoders"]
    | {258: _set_members, DURATION_TAG: decode_duration},
    "strict_hashable_types": True,
}


def new_encoder() -> Any:
    """A CBOREncoder writing what the transport sends (as cbor2.dumps with these options)."""
    return cbor2.CBOREncoder(io.BytesIO(), default=encode_extra, datetime_as_timestamp=False)


def new_peer_decoder() -> tuple[io.BytesIO, Any]:
    """A CBORDecoder of a peer's messages, and the stream it reads them from."""
    stream = io.BytesIO()
    return stream, cbor2.CBORDecoder(stream, **PEER_LOAD_OPTIONS)


def load_counted(raw: bytes, max_items: int | None) -> Any:
    """The one CBOR item *raw* holds, once its items are counted (at most *max_items*, and
    nothing after them). With None, between the master's own tasks, as cbor2 decodes it."""
    if max_items is None:
        return cbor2.loads(raw, **LOAD_OPTIONS)
    check_structure(raw, max_items)  # which also refuses junk after it
    return cbor2.loads(raw, **PEER_LOAD_OPTIONS)


def malformed(exc: Exception) -> MalformedCBOR:
    """What decoding a message raised, as the MalformedCBOR to report."""
    if isinstance(exc, MalformedCBOR):
        return exc
    if isinstance(exc.__cause__, MalformedCBOR):  # raised by a hook, wrapped by cbor2
        return exc.__cause__
    return MalformedCBOR(f"not a CBOR message ({describe_value(str(exc))})")


def _check_end(pos: int, end: int) -> None:
    if pos > end:
        raise MalformedCBOR("a truncated message")
    if pos < end:
        raise MalformedCBOR("junk after the message")


def check_structure(raw: bytes | memoryview, max_items: int) -> None:
    """Refuse *raw* unless it is one CBOR item of at most *max_items* items, nested at most
    MAX_DEPTH deep, with definite lengths and only the tags messages carry.

    This walks the items' heads without building anything, so a hostile message costs at most
    *max_items* steps here (~1 us each), and is refused before cbor2 builds what it describes.
    """
    data = bytes(raw)
    end, pos = len(data), 0
    left = [1]  # items still to read at each level of nesting
    items = 0
    while True:
        while not left[-1]:
            left.pop()
            if not left:
                _check_end(pos, end)
                return
        items += 1
        if items > max_items:
            raise MalformedCBOR(f"more than {max_items} items in one message")
        left[-1] -= 1
        if pos >= end:
            raise MalformedCBOR("a truncated message")
        first = data[pos]
        major, value = first >> 5, first & 0x1F
        pos += 1
        if value >= 24:
            if value > 27:
                raise MalformedCBOR("an indefinite length or a reserved head")
            size = 1 << (value - 24)
            value = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        if major == 2 or major == 3:  # noqa: PLR1714 (faster than a tuple test, here)
            pos += value
        elif major == 4 or major == 5:  # noqa: PLR1714
            count = value if major == 4 else 2 * value  # a map's entries are two items each
            if count > end - pos:  # every item takes a byte at least
                raise MalformedCBOR("a container longer than the message")
            if len(left) > MAX_DEPTH:
                raise MalformedCBOR(f"nested more than {MAX_DEPTH} deep")
            left.append(count)
        elif major == 6:
            if value not in ALLOWED_TAGS:
                raise MalformedCBOR(f"a CBOR tag no message carries ({describe_value(value)})")
            left[-1] += 1  # the tagged item


def cbor_head(major: int, value: int) -> bytes:
    """The head of a CBOR item (RFC 8949 section 3) in the shortest form, as cbor2 writes it."""
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError(f"{value} does not fit a CBOR head")


def read_head(raw: memoryview, pos: int) -> tuple[int, int, int]:
    """``(major type, value, position after)`` of the CBOR head at *pos*; a major type of -1
    for what a reader of heads leaves to cbor2 (indefinite lengths, floats, truncation)."""
    if pos >= len(raw):
        return -1, 0, pos
    first = raw[pos]
    major, info = first >> 5, first & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info > 27:
        return -1, 0, pos
    size = 1 << (info - 24)
    if pos + 1 + size > len(raw):
        return -1, 0, pos
    return major, int.from_bytes(raw[pos + 1 : pos + 1 + size], "big"), pos + 1 + size
