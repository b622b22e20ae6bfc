"""ZeroMQ sockets that speak a :class:`~piwheels.protocols.Protocol` in CBOR.

What they send and receive is made and checked by :mod:`piwheels.message_codec`.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

import zmq

from piwheels.message_codec import (
    ProtocolError,
    decode,
    decode_frame,
    decode_frames,
    encode,
    encode_frames,
    encode_head,
)
from piwheels.protocols import NO_DATA, Protocol

log = logging.getLogger(__name__)

# How often a wait on a socket stops to call its caller's checks (a stop flag, a deadline, the
# connection's monitor): the shortest time a signal or a lost connection can take to be noticed.
POLL_SLICE = 0.1


# pyzmq's send_multipart and recv_multipart cost ~6.5 and ~7 us for a 3-frame message, most of
# it checking each part's type and combining flag enums; sending the frames one by one with
# plain int flags costs ~1.8 us (a reply to a slave is 3 frames; a request to an Oracle crosses
# Seraph as 5, then 3).
SNDMORE = int(zmq.SNDMORE)
RCVMORE = int(zmq.RCVMORE)


def send_frames(zsock: zmq.Socket[Any], frames: list[bytes], flags: int = 0) -> None:
    """Send *frames* as one message (what ``send_multipart`` does, for byte strings)."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        zsock.send(frame, flags | SNDMORE if i < last else flags)


def recv_frames(zsock: zmq.Socket[Any], flags: int = 0) -> list[bytes]:
    """Receive one message's frames as byte strings (``recv_multipart``, copying)."""
    frames = [zsock.recv(flags)]
    while zsock.getsockopt(RCVMORE):
        frames.append(zsock.recv(flags))
    return frames


def recv_at_most(
    zsock: zmq.Socket[Any], keep: int, flags: int = 0, *, copy: bool = True
) -> tuple[list[Any], int]:
    """:func:`recv_frames` for a peer's message: at most the first *keep* frames are kept, and
    how many the message had is returned with them. Without *copy*, the frames come as libzmq
    received them (``zmq.Frame``).

    A peer may send a message of any number of frames, each up to the socket's MAXMSGSIZE:
    those past what a message may have are received and dropped one by one, never held.
    """
    frames = [zsock.recv(flags, copy=copy)]
    count = 1
    while zsock.getsockopt(RCVMORE):
        frame = zsock.recv(flags, copy=copy)
        count += 1
        if count <= keep:
            frames.append(frame)
    return frames, count


class UntrustedPeer(ProtocolError):
    """A message on a CurveZMQ server from a key it does not (or no longer) admit: refused
    before a byte of it is decoded. ``key`` is the one it came with ("" if none)."""

    def __init__(self, address: bytes, key: str) -> None:
        super().__init__("its key is not trusted", address)
        self.key = key


def _peer_key(frame: zmq.Frame) -> str:
    """The public key (Z85) of the CurveZMQ client *frame* came from, as the ZAP handler
    admitted it; "" where there is none (a plain connection, or no ZAP handler)."""
    try:
        return str(frame.get("User-Id"))
    except zmq.ZMQError:
        return ""


def _peer_address(frame: zmq.Frame) -> str:
    """The IP address *frame* came from; "" where it came by ipc:// (which libzmq describes
    with the peer's credentials) or inproc://."""
    try:
        address = str(frame.get("Peer-Address"))
        return str(ipaddress.ip_address(address))
    except (zmq.ZMQError, ValueError):
        return ""


def private_routing_id() -> bytes:
    """A routing id for a peer's sockets to the master that no one else can guess.

    A slave (or piw-import) gives its request socket and its file socket the same one, so the
    master can tell that a file connection is that slave's own (see the File Juggler). libzmq
    keeps ids starting with a zero byte for those it makes up itself.
    """
    return bytes([secrets.randbelow(255) + 1]) + secrets.token_bytes(15)


def chose_routing_id(address: bytes) -> bool:
    """Whether a ROUTER's *address* of a peer is one the peer chose (not made up by libzmq)."""
    return not address.startswith(b"\0")


class Socket:
    """A ZeroMQ socket bound to one protocol.

    ROUTER sockets prefix every message with the peer's address; :meth:`send_to` and
    :meth:`recv_from` handle that frame, :meth:`send` and :meth:`recv` the rest. With
    *peer_addresses*, :meth:`recv_from` also notes the sender's IP address in ``peer`` ("" where
    there is none, as over ipc://), for the log and to tell one host's connections apart; with
    *peer_keys*, the sender's public key in ``peer_key`` (a CurveZMQ server's: see
    :mod:`piwheels.builder_keys`).

    A ROUTER may hear several dialects of its protocol (the spec's and the original
    piwheels'): :meth:`recv_from` is told which each peer may speak, and notes in ``spoken`` the
    one its message was in; :meth:`send_to` answers in the one it is given.
    """

    def __init__(
        self,
        kind: int,
        protocol: Protocol,
        *,
        context: zmq.Context[Any] | None = None,
        max_message_size: int | None = None,
        peer_addresses: bool = False,
        peer_keys: bool = False,
    ) -> None:
        self.protocol = protocol
        self.zsock: zmq.Socket[Any] = (context or zmq.Context.instance()).socket(kind)
        # Closing must never block a stopping task on undelivered messages.
        self.zsock.setsockopt(zmq.LINGER, 0)
        if max_message_size is not None:
            # A hostile peer must not make us allocate without bound; libzmq drops it early.
            self.zsock.setsockopt(zmq.MAXMSGSIZE, max_message_size)
        self.peer_addresses = peer_addresses
        self.peer = ""
        self.peer_keys = peer_keys
        self.peer_key = ""
        self.spoken = protocol

    def bind(self, address: str) -> Self:
        self.zsock.bind(address)
        return self

    def connect(self, address: str) -> Self:
        self.zsock.connect(address)
        return self

    def close(self) -> None:
        self.zsock.close(linger=0)

    def poll(self, timeout_ms: float) -> bool:
        return bool(self.zsock.poll(round(timeout_ms)))

    def send(self, action: str, data: Any = NO_DATA, *, flags: int = 0) -> None:
        self._send_payload(encode(self.protocol, action, data), flags)

    def send_unstuck(
        self,
        action: str,
        data: Any = NO_DATA,
        *,
        waiting: Callable[[], None],
        pause: float = POLL_SLICE,
    ) -> None:
        """:meth:`send`, never stuck inside libzmq: until the message can go, *waiting* is
        called every *pause* seconds, and gives up by raising.

        A connecting socket queues what it sends until its connection is made; but once that
        connection has failed its handshake for good (a CurveZMQ key refused), the socket has
        no pipe left and a blocking send waits for ever.
        """
        payload = encode(self.protocol, action, data)
        while True:
            try:
                self._send_payload(payload, zmq.NOBLOCK)
            except zmq.Again:
                waiting()
                time.sleep(pause)
            else:
                return

    def _send_payload(self, payload: bytes, flags: int) -> None:
        if self.zsock.type == zmq.DEALER:
            # A DEALER talks to a ROUTER: keep the REQ-style empty delimiter so the ROUTER end
            # sees one envelope shape whatever kind of socket the peer uses.
            send_frames(self.zsock, [b"", payload], flags)
        else:
            self.zsock.send(payload, flags)

    def send_filled(
        self,
        action: str,
        head: tuple[Any, ...],
        length: int,
        fill: Callable[[memoryview], None],
        *,
        flags: int = 0,
    ) -> None:
        """Send *action* with data ``(*head, payload)``, where *fill* writes the *length* bytes
        of the payload straight into the outgoing frame (see :func:`encode_head`).

        The frame is handed to ZeroMQ without a copy; if *fill* raises, nothing is sent.
        """
        prefix = encode_head(self.protocol, action, head, length)
        frame = bytearray(len(prefix) + length)
        frame[: len(prefix)] = prefix
        payload = memoryview(frame)[len(prefix) :]
        try:
            fill(payload)
        finally:
            payload.release()  # else ZeroMQ's hold on the frame outlives the caller's use
        if self.zsock.type == zmq.DEALER:
            self.zsock.send_multipart([b"", frame], flags, copy=False)
        else:
            self.zsock.send(frame, flags, copy=False)

    def recv(self, *, flags: int = 0) -> tuple[str, Any]:
        if self.zsock.type == zmq.DEALER:
            frames, count = recv_at_most(self.zsock, 2, flags)
            if count != 2 or frames[0] != b"":
                raise ProtocolError(f"{self.protocol.name}: malformed envelope")
            return decode(self.protocol, frames[1])
        return decode(self.protocol, self.zsock.recv(flags, copy=True))

    def send_to(
        self, address: bytes, action: str, data: Any = NO_DATA, *, protocol: Protocol | None = None
    ) -> None:
        """Send to a ROUTER's peer at *address*, in *protocol* (the socket's own by default)."""
        protocol = protocol or self.protocol
        if protocol.framing == "frames":
            send_frames(self.zsock, [address, *encode_frames(protocol, action, data)])
        else:
            send_frames(self.zsock, [address, b"", encode(protocol, action, data)])

    def recv_from(
        self,
        *,
        copy: bool = True,
        dialects: Sequence[Protocol] = (),
        speaks: Callable[[bytes], Protocol | None] | None = None,
        admits: Callable[[str], bool] | None = None,
    ) -> tuple[bytes, str, Any]:
        """Receive from a ROUTER: ``(address, action, data)``.

        The address is returned even when the message is bad (inside the ProtocolError's
        ``address`` attribute) so the caller can log which peer misbehaved. Without *copy*, a
        byte string that ends a message is a memoryview into it (see :func:`decode_frame`).
        *dialects* are the protocols a peer may speak, tried in order (by default the socket's
        own), and *speaks* gives the one a peer at an address is known to speak (None where it
        is not known); the one that decoded the message is then ``spoken``. A message whose
        key *admits* refuses raises :class:`UntrustedPeer`, undecoded.
        """
        candidates = dialects or (self.protocol,)
        keep = 4 if any(p.framing == "frames" for p in candidates) else 3
        if copy and not self.peer_addresses and not self.peer_keys:
            frames, count = recv_at_most(self.zsock, keep)
        else:
            parts, count = recv_at_most(self.zsock, keep, copy=False)
            if self.peer_addresses:
                self.peer = _peer_address(parts[0])
            if self.peer_keys:  # the routing id's frame is libzmq's own: it carries no key
                self.peer_key = _peer_key(parts[-1])
            frames = [part.bytes for part in parts[:-1]]
            frames.append(parts[-1].bytes if copy else parts[-1].buffer)
        address = bytes(frames[0])
        if admits is not None and not admits(self.peer_key):
            raise UntrustedPeer(address, self.peer_key)
        if speaks is not None and (known := speaks(address)) is not None:
            candidates = (known,)
        # the spec's envelope has an empty delimiter; the original's file queue has none
        framed = count > 1 and frames[1] != b""
        candidates = [p for p in candidates if (p.framing == "frames") == framed]
        if not candidates or count > len(frames) or (not framed and count != 3):
            raise ProtocolError(
                f"{self.protocol.name}: malformed envelope ({count} frames)", address
            )
        failures = []
        for protocol in candidates:
            try:
                if framed:
                    action, data = decode_frames(protocol, frames[1:])
                elif copy:
                    action, data = decode(protocol, frames[2])
                else:
                    action, data = decode_frame(protocol, frames[2])
            except ProtocolError as exc:
                failures.append(exc)
                continue
            self.spoken = protocol
            return address, action, data
        raise ProtocolError(str(failures[0]), address)

    def send_raw_to(self, address: bytes, payload: bytes) -> None:
        send_frames(self.zsock, [address, b"", payload])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
