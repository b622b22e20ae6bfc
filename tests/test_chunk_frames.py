"""CHUNKs sent and received without copying through CBOR: the same bytes on the wire."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cbor2
import pytest
import zmq

from piwheels import protocols
from piwheels.file_sender import answer_fetch
from piwheels.message_codec import ProtocolError, decode, decode_frame, encode, encode_head
from piwheels.transport import Socket

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


def test_a_chunk_is_read_straight_into_its_frame(tmp_path: Path) -> None:
    content = os.urandom(3000)
    (tmp_path / "wheel").write_bytes(content)
    context: zmq.Context[Any] = zmq.Context()
    try:
        with (
            Socket(zmq.ROUTER, RECEIVER, context=context) as master,
            Socket(zmq.DEALER, SENDER, context=context) as slave,
            (tmp_path / "wheel").open("rb") as wheel,
        ):
            port = master.zsock.bind_to_random_port("tcp://127.0.0.1")
            slave.connect(f"tcp://127.0.0.1:{port}")
            assert answer_fetch(slave, wheel, 1000, 1500)
            assert master.poll(5000)
            _, action, (offset, chunk) = master.recv_from(copy=False)
            assert (action, offset, bytes(chunk)) == ("CHUNK", 1000, content[1000:2500])
            # beyond the end: refused, nothing sent
            assert not answer_fetch(slave, wheel, 2000, 1001)
            assert not master.poll(100)
    finally:
        context.destroy(linger=0)
