"""Whole messages to CBOR and back: the decoders reused, the tags refused, and a CHUNK's
payload sent and received without passing through CBOR (the same bytes on the wire)."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

import cbor2
import pytest

from piwheels import protocols
from piwheels.message_codec import ProtocolError, decode, decode_frame, encode, encode_head
from sample_shapes import NOW, Pair

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
    # a slave that does not report swap: its two fields decode as None
    messages = [
        (NOW + timedelta(seconds=n), n, n, n, n, n / 2, 40.0, None, None) for n in range(50)
    ]
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


# -- a CHUNK's head and payload ----------------------------------------------------------------

SENDER = reversed(protocols.file_juggler)
RECEIVER = protocols.file_juggler
OFFSETS = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**40]
LENGTHS = [0, 1, 23, 24, 255, 256, 65_536, 1 << 20]


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("length", LENGTHS)
def test_a_head_and_its_payload_are_what_encode_sends(offset: int, length: int) -> None:
    payload = os.urandom(length)
    message = encode(SENDER, "CHUNK", (offset, payload))
    assert encode_head(SENDER, "CHUNK", (offset,), length) + payload == message
    action, (got_offset, got_payload) = decode_frame(RECEIVER, memoryview(message))
    assert (action, got_offset) == ("CHUNK", offset)
    assert isinstance(got_payload, memoryview)
    assert got_payload == payload


def test_only_a_record_ending_in_bytes_has_a_head() -> None:
    with pytest.raises(ProtocolError, match="does not end in bytes"):
        encode_head(SENDER, "HELLO", (1,), 10)
    with pytest.raises(ProtocolError, match="expected int"):
        encode_head(SENDER, "CHUNK", ("0",), 10)
    with pytest.raises(ProtocolError, match="fields"):
        encode_head(SENDER, "CHUNK", (0, 1), 10)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff",
        cbor2.dumps(["CHUNK", 1]),
        cbor2.dumps(["CHUNK", 1.5, b"x"]),
        cbor2.dumps(["CHUNK", True, b"x"]),
        cbor2.dumps(["CHUNK", 1, "x"]),
        cbor2.dumps(["CHUNK", 1, b"xy"])[:-1],
        cbor2.dumps(["FETCH", 1, 2]),
        cbor2.dumps(["HELLO", 1]),
        cbor2.dumps(["CHUNK", cbor2.CBORTag(2, b"\x01"), b"x"]),
        b"\x83\x65CHUNK\x01\x5f\x41x\xff",  # an indefinite-length byte string
    ],
)
def test_anything_else_decodes_as_it_always_did(raw: bytes) -> None:
    """What the fast path does not take, decode() does: the same result or the same error."""
    try:
        expected: Any = decode(RECEIVER, raw)
    except ProtocolError as exc:
        with pytest.raises(ProtocolError) as refused:
            decode_frame(RECEIVER, memoryview(raw))
        assert str(refused.value) == str(exc)
    else:
        assert decode_frame(RECEIVER, memoryview(raw)) == expected
