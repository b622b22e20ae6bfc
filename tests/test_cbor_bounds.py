"""The bounds a peer's CBOR is held to before cbor2 builds it, and the types CBOR lacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cbor2
import pytest

from piwheels.cbor_bounds import (
    DURATION_TAG,
    MAX_DEPTH,
    PEER_LOAD_OPTIONS,
    MalformedCBOR,
    cbor_head,
    check_structure,
    decode_duration,
    load_counted,
    malformed,
    new_encoder,
    new_peer_decoder,
    read_head,
)


def dumps(value: object) -> bytes:
    return new_encoder().encode_to_bytes(value)


def test_durations_and_sets_travel_as_the_original_sends_them() -> None:
    delta = timedelta(days=-1, seconds=5, microseconds=7)
    duration, members = cbor2.loads(dumps([delta, frozenset({"a"})]))
    assert (duration.tag, list(duration.value)) == (DURATION_TAG, [-1, 5, 7])
    assert members == {"a"}
    assert load_counted(dumps([delta, frozenset({"a"})]), None) == [delta, {"a"}]
    # a peer's set stays the array of its members: the shape that takes it makes the set
    assert load_counted(dumps([delta, frozenset({"a"})]), 100) == [delta, ["a"]]
    with pytest.raises(cbor2.CBOREncodeError, match="cannot send a PosixPath"):
        dumps(Path("/tmp"))


def test_times_keep_their_timezone() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert load_counted(dumps(when), 10) == when


def test_a_duration_is_three_exact_integers() -> None:
    assert decode_duration([0, 5, 7], False) == timedelta(seconds=5, microseconds=7)
    for parts in ([0, 5], [0, "5", 0], [0, 1.5, 0], [0, True, 0], [10**9, 0, 0], {0: 1}):
        with pytest.raises(MalformedCBOR, match=f"unexpected CBOR tag {DURATION_TAG}"):
            decode_duration(parts, False)


@pytest.mark.parametrize(
    ("value", "items"),
    [
        (1, 1),
        ([1, 2], 3),
        ({"a": [1]}, 4),
        ("x" * 1000, 1),
        ([[[]]], 3),
        # each tag is an item, and so is what it holds
        ([datetime(2026, 1, 1, tzinfo=UTC), frozenset({1}), timedelta(1)], 11),
    ],
)
def test_items_are_counted_as_cbor_nests_them(value: object, items: int) -> None:
    raw = dumps(value)
    check_structure(raw, items + 1)
    with pytest.raises(MalformedCBOR, match=f"more than {items - 1} items in one message"):
        check_structure(raw, items - 1)


def test_a_message_of_exactly_its_bound_of_items_is_taken() -> None:
    check_structure(dumps([1, 2]), 3)
    with pytest.raises(MalformedCBOR, match="more than 2 items"):
        check_structure(dumps([1, 2]), 2)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (dumps([1, 2]) + b"\x00", "junk after the message"),
        (b"\x42a", "a truncated message"),
        (b"\x82\x01", "a container longer than the message"),
        (b"\x9f\x01\xff", "an indefinite length or a reserved head"),
        (b"\x5f\x41x\xff", "an indefinite length or a reserved head"),
        (b"\x9a\xff\xff\xff\xff", "a container longer than the message"),
        (b"\x81" * (MAX_DEPTH + 2) + b"\x00", f"nested more than {MAX_DEPTH} deep"),
        (dumps(cbor2.CBORTag(2, b"\x01")), r"a CBOR tag no message carries \(2\)"),
    ],
)
def test_a_message_out_of_bounds_is_refused_unbuilt(raw: bytes, error: str) -> None:
    with pytest.raises(MalformedCBOR, match=error):
        check_structure(raw, 1000)
    with pytest.raises(MalformedCBOR, match=error):
        load_counted(raw, 1000)


def test_a_peers_map_keys_must_be_text() -> None:
    raw = b"\xa1\x82\x01\x02\x03"  # {[1, 2]: 3}
    assert cbor2.loads(raw) == {(1, 2): 3}
    with pytest.raises(cbor2.CBORDecodeError) as refused:
        cbor2.loads(raw, **PEER_LOAD_OPTIONS)
    assert isinstance(malformed(refused.value), MalformedCBOR)
    assert load_counted(dumps({"a": 1}), 10) == {"a": 1}


def test_a_peer_decoder_reads_from_its_stream() -> None:
    stream, decoder = new_peer_decoder()
    stream.write(dumps(["IDLE", timedelta(seconds=1)]))
    stream.seek(0)
    assert decoder.decode() == ["IDLE", timedelta(seconds=1)]


def test_whatever_decoding_raised_is_reported_as_malformed() -> None:
    own = MalformedCBOR("a truncated message")
    assert malformed(own) is own
    wrapped = ValueError("wrapped")
    wrapped.__cause__ = own
    assert malformed(wrapped) is own
    assert str(malformed(EOFError("premature end"))) == "not a CBOR message ('premature end')"


@pytest.mark.parametrize(
    "value", [0, 23, 24, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**64 - 1]
)
def test_a_head_is_written_and_read_as_cbor2_does(value: int) -> None:
    head = cbor_head(0, value)
    assert head == cbor2.dumps(value)
    assert read_head(memoryview(head + b"rest"), 0) == (0, value, len(head))
    assert read_head(memoryview(head[:-1]), 0)[0] == -1  # truncated: cbor2 says so
    assert cbor_head(2, value)[0] >> 5 == 2


def test_what_a_reader_of_heads_leaves_to_cbor2() -> None:
    assert read_head(memoryview(b""), 0) == (-1, 0, 0)
    assert read_head(memoryview(b"\x9f"), 0) == (-1, 0, 0)  # an indefinite length
    assert read_head(memoryview(b"\x00\x83"), 1) == (4, 3, 2)
    with pytest.raises(ValueError, match="does not fit a CBOR head"):
        cbor_head(0, 2**64)
