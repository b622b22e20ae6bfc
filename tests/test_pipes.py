"""Messages on a child's pipes: framed, read whole however the bytes arrive, and a stream
that has lost its place said so rather than misread."""

from __future__ import annotations

import io

import pytest

from piwheels import protocols
from piwheels.message_codec import ProtocolError
from piwheels.pipes import HEADER, MAX_MESSAGE, MessageReader, StreamBroken, frame, read_message
from piwheels.protocols.messages import PagesWritten

SCRIBE = protocols.page_writer  # the master's side: sends BOTH/PROJECT, receives DONE/LOG
WRITER = reversed(protocols.page_writer)


def test_a_message_read_whole_however_its_bytes_arrive() -> None:
    raw = frame(WRITER, "DONE", PagesWritten("foo", new=True, retry=False)) + frame(
        WRITER, "LOG", (20, "wrote the pages of foo")
    )
    reader = MessageReader(SCRIBE)
    said = []
    for byte in range(len(raw)):  # one byte at a time: the worst a pipe can do
        said += reader.feed(raw[byte : byte + 1])
    assert said == [
        ("DONE", PagesWritten("foo", True, False)),
        ("LOG", (20, "wrote the pages of foo")),
    ]
    assert reader.pending == b""


def test_a_bad_message_is_refused_and_the_next_is_read() -> None:
    bad = b"\xff not cbor"
    raw = HEADER.pack(len(bad)) + bad + frame(WRITER, "LOG", (30, "after"))
    first, second = MessageReader(SCRIBE).feed(raw)
    assert isinstance(first, ProtocolError)
    assert second == ("LOG", (30, "after"))
    stream = io.BytesIO(raw)
    with pytest.raises(ProtocolError):
        read_message(stream, SCRIBE)
    assert read_message(stream, SCRIBE) == ("LOG", (30, "after"))
    assert read_message(stream, SCRIBE) is None  # the end


def test_a_message_the_other_side_may_not_send_is_refused() -> None:
    [refused] = MessageReader(SCRIBE).feed(frame(SCRIBE, "BOTH", "foo"))  # the Scribe's own
    assert isinstance(refused, ProtocolError)


def test_a_stream_that_lost_its_place_is_broken() -> None:
    too_long = HEADER.pack(MAX_MESSAGE + 1) + b"x" * 10
    [broken] = MessageReader(SCRIBE).feed(too_long)
    assert isinstance(broken, StreamBroken)
    with pytest.raises(StreamBroken):
        read_message(io.BytesIO(too_long), SCRIBE)
    cut = frame(WRITER, "LOG", (20, "cut short"))[:-3]
    with pytest.raises(StreamBroken, match="ended inside a message"):
        read_message(io.BytesIO(cut), SCRIBE)
