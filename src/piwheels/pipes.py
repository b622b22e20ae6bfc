"""Messages on a child process's pipes, declared like those on sockets (piwheels.protocols).

A pipe is a stream of bytes, so each message travels as its length (four bytes, big-endian)
and then its CBOR encoding, checked both ways by :mod:`piwheels.transport` as on a socket. A
reader on a non-blocking pipe keeps a message's first part until the rest comes.
"""

from __future__ import annotations

import struct
from typing import IO, Any

from piwheels.message_codec import ProtocolError, decode, encode
from piwheels.protocols import NO_DATA, Protocol

HEADER = struct.Struct(">I")


class StreamBroken(ProtocolError):
    """The stream lost its place (cut inside a message, or a length no message has): nothing
    after it can be read."""


# Longer is no message of ours: a pipe that says so has lost its place in the stream.
MAX_MESSAGE = 16 * 1024 * 1024


def frame(protocol: Protocol, action: str, data: Any = NO_DATA) -> bytes:
    """*action* with *data*, checked against what *protocol* may send, ready for a pipe."""
    raw = encode(protocol, action, data)
    return HEADER.pack(len(raw)) + raw


def write_message(stream: IO[bytes], protocol: Protocol, action: str, data: Any = NO_DATA) -> None:
    stream.write(frame(protocol, action, data))
    stream.flush()


def read_message(stream: IO[bytes], protocol: Protocol) -> tuple[str, Any] | None:
    """The next message on a blocking *stream*, or None at its end: ProtocolError for a message
    *protocol* does not allow (the next can be read), StreamBroken when none can be."""
    header = stream.read(HEADER.size)
    if not header:
        return None
    (length,) = HEADER.unpack(_whole(header, HEADER.size))
    if length > MAX_MESSAGE:
        raise StreamBroken(f"{protocol.name}: a message of {length} bytes")
    return decode(protocol, _whole(stream.read(length), length))


def _whole(raw: bytes, length: int) -> bytes:
    if len(raw) != length:
        raise StreamBroken(f"the stream ended inside a message ({len(raw)} of {length} bytes)")
    return raw


class MessageReader:
    """The messages in what a non-blocking pipe gives, chunk by chunk."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.pending = b""

    def feed(self, chunk: bytes) -> list[tuple[str, Any] | ProtocolError]:
        """Each complete message so far, or the ProtocolError it raised."""
        self.pending += chunk
        messages: list[tuple[str, Any] | ProtocolError] = []
        while len(self.pending) >= HEADER.size:
            (length,) = HEADER.unpack_from(self.pending)
            if length > MAX_MESSAGE:
                self.pending = b""  # nothing after it can be found again
                messages.append(StreamBroken(f"{self.protocol.name}: {length} bytes long"))
                break
            end = HEADER.size + length
            if len(self.pending) < end:
                break
            raw, self.pending = self.pending[HEADER.size : end], self.pending[end:]
            try:
                messages.append(decode(self.protocol, raw))
            except ProtocolError as exc:
                messages.append(exc)
        return messages
