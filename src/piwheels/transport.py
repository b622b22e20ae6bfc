"""ZeroMQ sockets that speak a :class:`~piwheels.protocols.Protocol` in CBOR.

This is the only module that turns bytes from the wire into messages. Whatever is wrong with
what arrives (not CBOR, an unknown action, data of the wrong shape) becomes one exception,
:class:`ProtocolError`, which a task logs before dropping the message and carrying on.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Self, TypeGuard

import cbor2
import zmq

from piwheels.codec import Bytes, Record, Shape, ShapeError, describe_value
from piwheels.protocols import NO_DATA, NoData, Protocol

log = logging.getLogger(__name__)

# timedelta has no CBOR type. RFC 9581 gives durations tag 1002 with a map of time parts; we
# send whole seconds under key 1 and microseconds under key -6 so both ends round-trip exactly.
DURATION_TAG = 1002


class ProtocolError(Exception):
    """A message that could not be decoded or did not match its declared shape.

    ``address`` is the sending peer on a ROUTER socket, so the caller can say who misbehaved.
    """

    def __init__(self, message: str, address: bytes | None = None) -> None:
        super().__init__(message)
        self.address = address


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


def _peer_address(frame: zmq.Frame) -> str:
    """The IP address *frame* came from; "" where it came by ipc:// (which libzmq describes
    with the peer's credentials) or inproc://."""
    try:
        address = str(frame.get("Peer-Address"))
        return str(ipaddress.ip_address(address))
    except (zmq.ZMQError, ValueError):
        return ""


def _encode_default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, timedelta):
        seconds, micros = divmod(value // timedelta(microseconds=1), 1_000_000)
        encoder.encode(cbor2.CBORTag(DURATION_TAG, {1: seconds, -6: micros}))
    elif isinstance(value, frozenset | set):
        encoder.encode(list(value))
    else:
        raise cbor2.CBOREncodeTypeError(f"cannot send a {type(value).__name__}")


# Tags cbor2 would decode itself, bar those messages carry: 0 (a datetime as text) and 258 (a
# set: cbor2 writes frozensets so). Each is refused: bignums (2, 3) are integers no field
# holds, and of which Python cannot even make a str() past 4,300 digits; shared references
# (28, 29) make a structure whose walk is exponential in its size; the rest are types no
# message carries.
_REFUSED_TAGS = (1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 260, 261)
_ALLOWED_TAGS = frozenset({0, 258, DURATION_TAG})
# The deepest message (an Oracle's rows, a BUILT's dependency) nests 6 deep.
MAX_DEPTH = 16
# A message up to this size is decoded without counting its items first: it cannot hold more
# than this many, and at that size even a map of colliding keys costs little to build.
SCAN_ABOVE = 1024


def _refuse_tag(decoder: Any) -> Any:
    raise ProtocolError("a CBOR tag no message carries")


_SEMANTIC_DECODERS = dict.fromkeys(_REFUSED_TAGS, _refuse_tag)


def _decode_tag(tag: cbor2.CBORTag, _immutable: bool) -> Any:
    if tag.tag == DURATION_TAG and isinstance(tag.value, Mapping):
        seconds, micros = tag.value.get(1, 0), tag.value.get(-6, 0)
        if type(seconds) is int and type(micros) is int:
            return timedelta(seconds=seconds, microseconds=micros)
    raise ProtocolError(f"unexpected CBOR tag {tag.tag}")


def _record_like(spec: object) -> bool:
    return hasattr(spec, "fields")


def encode(protocol: Protocol, action: str, data: Any = NO_DATA) -> bytes:
    """Check *data* against what *protocol* may send as *action* and encode it."""
    try:
        spec = protocol.send[action]
    except KeyError:
        raise ProtocolError(f"{protocol.name}: may not send {action!r}") from None
    if spec is None:
        if not isinstance(data, NoData):
            raise ProtocolError(f"{protocol.name}: {action} carries no data")
        return cbor2.dumps(action)
    if isinstance(data, NoData):
        raise ProtocolError(f"{protocol.name}: {action} needs data ({spec.describe()})")
    try:
        spec.check(data, action)
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: refusing to send {exc}") from None
    message = [action, *data] if _record_like(spec) else [action, data]
    return cbor2.dumps(message, default=_encode_default, datetime_as_timestamp=False)


def _cbor_head(major: int, value: int) -> bytes:
    """The head of a CBOR item (RFC 8949 section 3) in the shortest form, as cbor2 writes it."""
    if value < 24:
        return bytes([major << 5 | value])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | info]) + value.to_bytes(size, "big")
    raise ValueError(f"{value} does not fit a CBOR head")


def _ends_in_bytes(spec: Shape | None) -> TypeGuard[Record]:
    """Whether *spec* is a record whose last field is a byte string (a file's chunk)."""
    return isinstance(spec, Record) and spec.fields[-1] is Bytes


def _bytes_record(protocol: Protocol, action: str, table: Mapping[str, Any]) -> Any:
    """The spec of *action*, which must be a record whose last field is a byte string."""
    try:
        spec = table[action]
    except KeyError:
        raise ProtocolError(f"{protocol.name}: no message {action!r} here") from None
    if not _ends_in_bytes(spec):
        raise ProtocolError(f"{protocol.name}: {action} does not end in bytes")
    return spec


def encode_head(protocol: Protocol, action: str, head: tuple[Any, ...], length: int) -> bytes:
    """What :func:`encode` would give for *action* with data ``(*head, payload)`` up to the
    payload's own bytes, for a payload of *length* bytes.

    The payload then follows without passing through CBOR: the message on the wire is the
    same, but a large payload is never copied into an encoder's buffer.
    """
    spec = _bytes_record(protocol, action, protocol.send)
    if len(head) + 1 != len(spec.fields):
        raise ProtocolError(f"{protocol.name}: refusing to send {action} with {len(head)} fields")
    try:
        for i, (shape, value) in enumerate(zip(spec.fields, head, strict=False)):
            shape.check(value, f"{action}.{spec.names[i]}")
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: refusing to send {exc}") from None
    parts = [_cbor_head(4, len(spec.fields) + 1), cbor2.dumps(action)]
    parts.extend(
        cbor2.dumps(value, default=_encode_default, datetime_as_timestamp=False) for value in head
    )
    parts.append(_cbor_head(2, length))
    return b"".join(parts)


def _check_end(pos: int, end: int) -> None:
    if pos > end:
        raise ProtocolError("a truncated message")
    if pos < end:
        raise ProtocolError("junk after the message")


def check_structure(raw: bytes | memoryview, max_items: int) -> None:
    """Refuse *raw* unless it is one CBOR item of at most *max_items* items, nested at most
    MAX_DEPTH deep, with definite lengths and only the tags messages carry.

    This walks the items' heads without building anything, so a hostile message costs at most
    *max_items* steps here (~1 us each), and is refused before cbor2 builds what it describes.
    """
    data = bytes(raw)
    end, pos = len(data), 0
    left = [1]  # items still to read at each level of nesting
    for _ in range(max_items):
        while not left[-1]:
            left.pop()
            if not left:
                _check_end(pos, end)
                return
        left[-1] -= 1
        if pos >= end:
            raise ProtocolError("a truncated message")
        first = data[pos]
        major, value = first >> 5, first & 0x1F
        pos += 1
        if value >= 24:
            if value > 27:
                raise ProtocolError("an indefinite length or a reserved head")
            size = 1 << (value - 24)
            value = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        if major == 2 or major == 3:  # noqa: PLR1714 (faster than a tuple test, here)
            pos += value
        elif major == 4 or major == 5:  # noqa: PLR1714
            count = value if major == 4 else 2 * value  # a map's entries are two items each
            if count > end - pos:  # every item takes a byte at least
                raise ProtocolError("a container longer than the message")
            if len(left) > MAX_DEPTH:
                raise ProtocolError(f"nested more than {MAX_DEPTH} deep")
            left.append(count)
        elif major == 6:
            if value not in _ALLOWED_TAGS:
                raise ProtocolError(f"a CBOR tag no message carries ({describe_value(value)})")
            left[-1] += 1  # the tagged item
    raise ProtocolError(f"more than {max_items} items in one message")


_LOAD_OPTIONS: dict[str, Any] = {
    "tag_hook": _decode_tag,
    "semantic_decoders": _SEMANTIC_DECODERS,
    "max_depth": MAX_DEPTH,
    "allow_indefinite": False,
}


def _load_alone(raw: bytes) -> Any:
    """The one item *raw* holds; junk after it is refused (cbor2.loads would ignore it)."""
    stream = io.BytesIO(raw)
    message = cbor2.CBORDecoder(stream, **_LOAD_OPTIONS).decode()
    if stream.tell() != len(raw):
        raise ProtocolError("junk after the message")
    return message


def _load(protocol: Protocol, raw: bytes) -> Any:
    """*raw* as cbor2 decodes it, within the bounds a message must keep to."""
    try:
        if protocol.max_items is None:  # between the master's own tasks
            return cbor2.loads(raw, **_LOAD_OPTIONS)
        if len(raw) <= SCAN_ABOVE:
            return _load_alone(raw)
        check_structure(raw, protocol.max_items)  # which also refuses junk after it
        return cbor2.loads(raw, **_LOAD_OPTIONS)
    except ProtocolError as exc:
        raise ProtocolError(f"{protocol.name}: {exc}") from None
    except Exception as exc:  # cbor2 raises several kinds for garbage; all mean the same here
        raise ProtocolError(
            f"{protocol.name}: not a CBOR message ({describe_value(str(exc))})"
        ) from None


def decode(protocol: Protocol, raw: bytes) -> tuple[str, Any]:
    """Decode *raw* into ``(action, data)``, checking it is something *protocol* may receive."""
    message = _load(protocol, raw)
    if isinstance(message, str):
        action, fields = message, None
    elif isinstance(message, list) and message and isinstance(message[0], str):
        action, fields = message[0], message[1:]
    else:
        raise ProtocolError(f"{protocol.name}: not a message: {describe_value(message)}")
    try:
        spec = protocol.recv[action]
    except KeyError:
        raise ProtocolError(f"{protocol.name}: unknown message {describe_value(action)}") from None
    if spec is None:
        if fields is not None:
            raise ProtocolError(f"{protocol.name}: {action} carries no data")
        return action, NO_DATA
    if fields is None:
        raise ProtocolError(f"{protocol.name}: {action} needs data ({spec.describe()})")
    if not _record_like(spec):
        if len(fields) != 1:
            raise ProtocolError(f"{protocol.name}: {action} carries one value")
        fields = fields[0]
    try:
        return action, spec.check(fields, action)
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: {exc}") from None


def _read_head(raw: memoryview, pos: int) -> tuple[int, int, int]:
    """``(major type, value, position after)`` of the CBOR head at *pos*; a major type of -1
    for what the fast path below leaves to cbor2 (indefinite lengths, floats, truncation)."""
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


def _decode_payload(protocol: Protocol, raw: memoryview) -> tuple[str, Any] | None:
    """The fast path of :func:`decode_frame`: a record of integers ending in a byte string,
    whose bytes come back as a view into *raw* rather than a copy. None for anything else."""
    major, count, pos = _read_head(raw, 0)
    if major != 4:
        return None
    major, size, pos = _read_head(raw, pos)
    if major != 3 or size > 64:
        return None
    try:
        action = str(raw[pos : pos + size], "utf-8")
    except UnicodeDecodeError:
        return None
    pos += size
    spec = protocol.recv.get(action)
    if not _ends_in_bytes(spec):
        return None
    if count != len(spec.fields) + 1:
        return None
    head: list[Any] = []
    for _ in spec.fields[:-1]:
        major, value, pos = _read_head(raw, pos)
        if major == 0:
            head.append(value)
        elif major == 1:
            head.append(-1 - value)
        else:
            return None
    major, size, pos = _read_head(raw, pos)
    if major != 2 or pos + size != len(raw):
        return None  # cbor2 says what is wrong with it
    try:
        fields = [
            shape.check(value, action) for shape, value in zip(spec.fields, head, strict=False)
        ]
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: {exc}") from None
    payload = raw[pos:]
    fields.append(payload)
    return action, spec.into(*fields) if spec.into is not None else tuple(fields)


def decode_frame(protocol: Protocol, raw: memoryview) -> tuple[str, Any]:
    """:func:`decode` for a received frame, without copying a large byte string out of it.

    A message whose declared shape ends in bytes (a file's chunk) keeps those bytes in *raw*:
    they come back as a read-only memoryview, which holds the frame for as long as it lives.
    Every other message, and anything the fast path does not recognise, goes through
    :func:`decode`, which also gives the errors.
    """
    decoded = _decode_payload(protocol, raw)
    if decoded is not None:
        return decoded
    return decode(protocol, raw.tobytes())


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
    there is none, as over ipc://), for the log and to tell one host's connections apart.
    """

    def __init__(
        self,
        kind: int,
        protocol: Protocol,
        *,
        context: zmq.Context[Any] | None = None,
        max_message_size: int | None = None,
        peer_addresses: bool = False,
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
        payload = encode(self.protocol, action, data)
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

    def send_to(self, address: bytes, action: str, data: Any = NO_DATA) -> None:
        send_frames(self.zsock, [address, b"", encode(self.protocol, action, data)])

    def recv_from(self, *, copy: bool = True) -> tuple[bytes, str, Any]:
        """Receive from a ROUTER: ``(address, action, data)``.

        The address is returned even when the message is bad (inside the ProtocolError's
        ``address`` attribute) so the caller can log which peer misbehaved. Without *copy*, a
        byte string that ends a message is a memoryview into it (see :func:`decode_frame`).
        """
        if copy and not self.peer_addresses:
            frames, count = recv_at_most(self.zsock, 3)
        else:
            parts, count = recv_at_most(self.zsock, 3, copy=False)
            if self.peer_addresses:
                self.peer = _peer_address(parts[0])
            frames = [part.bytes for part in parts[:-1]]
            frames.append(parts[-1].bytes if copy else parts[-1].buffer)
        address = bytes(frames[0])
        if count != 3 or frames[1] != b"":
            raise ProtocolError(
                f"{self.protocol.name}: malformed envelope ({count} frames)", address
            )
        try:
            if copy:
                action, data = decode(self.protocol, frames[2])
            else:
                action, data = decode_frame(self.protocol, frames[2])
        except ProtocolError as exc:
            raise ProtocolError(str(exc), address) from None
        return address, action, data

    def send_raw_to(self, address: bytes, payload: bytes) -> None:
        send_frames(self.zsock, [address, b"", payload])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
