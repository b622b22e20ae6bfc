"""Whole messages of a :class:`~piwheels.protocols.Protocol` to CBOR and back, checked.

This is the only module that turns bytes from the wire into messages. Whatever is wrong with
what arrives (not CBOR, an unknown action, data of the wrong shape) becomes one exception,
:class:`ProtocolError`, which a task logs before dropping the message and carrying on.

The transport's sockets (:mod:`piwheels.transport`) send and receive what these make; the CBOR
itself, and the bounds a peer's message is held to, are :mod:`piwheels.cbor_bounds`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import cbor2

from piwheels.cbor_bounds import (
    cbor_head,
    encode_extra,
    load_counted,
    malformed,
    new_encoder,
    new_peer_decoder,
    read_head,
)
from piwheels.codec import Bytes, Int, Record, Shape, ShapeError, describe_value
from piwheels.protocols import NO_DATA, NoData, Protocol


class ProtocolError(Exception):
    """A message that could not be decoded or did not match its declared shape.

    ``address`` is the sending peer on a ROUTER socket, so the caller can say who misbehaved.
    """

    def __init__(self, message: str, address: bytes | None = None) -> None:
        super().__init__(message)
        self.address = address


# cbor2's encoders and decoders, set up once: making one with its options costs a third of
# what encoding or decoding a small message does. Each is taken for one message and given back
# only when it has done its work without an error, so no state of a failure lives on, and no
# two threads share one (list.pop and list.append are atomic).
_SPARE_ENCODERS: list[Any] = []
_SPARE_DECODERS: list[list[Any]] = []  # [stream, decoder]: a decoder and the stream it reads
_reset_stream = io.BytesIO.__init__  # from bytes, which it shares rather than copies


def encode(protocol: Protocol, action: str, data: Any = NO_DATA) -> bytes:
    """Check *data* against what *protocol* may send as *action* and encode it."""
    # Nearly every message is a record after its action: that one is checked straight away.
    record = protocol.flat_sends.get(action)
    if record is not None and type(data) is not NoData:
        try:
            record.validate(data, action)
        except ShapeError as exc:
            raise ProtocolError(f"{protocol.name}: refusing to send {exc}") from None
        try:
            encoder = _SPARE_ENCODERS.pop()
        except IndexError:
            encoder = new_encoder()
        encoded: bytes = encoder.encode_to_bytes((action, *data))
        _SPARE_ENCODERS.append(encoder)
        return encoded
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
        spec.validate(data, action)
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: refusing to send {exc}") from None
    # a record sent flat took the fast path above: anything else travels as the one field
    # (a record too, in the original's "nested" framing)
    return _encode_message((action, data))


def _encode_message(message: tuple[Any, ...]) -> bytes:
    try:
        encoder = _SPARE_ENCODERS.pop()
    except IndexError:
        encoder = new_encoder()
    encoded: bytes = encoder.encode_to_bytes(message)
    _SPARE_ENCODERS.append(encoder)
    return encoded  # (the fast path in encode() does the same, inline)


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
            shape.validate(value, f"{action}.{spec.names[i]}")
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: refusing to send {exc}") from None
    parts = [cbor_head(4, len(spec.fields) + 1), cbor2.dumps(action)]
    parts.extend(
        cbor2.dumps(value, default=encode_extra, datetime_as_timestamp=False) for value in head
    )
    parts.append(cbor_head(2, length))
    return b"".join(parts)


def decode(protocol: Protocol, raw: bytes) -> tuple[str, Any]:
    """Decode *raw* into ``(action, data)``, checking it is something *protocol* may receive."""
    max_items = protocol.max_items
    try:
        # A message of n bytes holds n items at most: one no longer than its bound is decoded
        # without counting them first, by a decoder that reports where the item ended.
        if max_items is not None and len(raw) <= max_items:
            try:
                spare = _SPARE_DECODERS.pop()
            except IndexError:
                spare = [*new_peer_decoder()]
            stream, decoder = spare
            _reset_stream(stream, raw)
            message = decoder.decode()
            # cbor2 reads ahead, then seeks the stream back to the end of the item
            whole = stream.tell() == len(raw)
            if whole:
                _SPARE_DECODERS.append(spare)  # whose stream holds raw until it is next used
        else:
            message, whole = load_counted(raw, max_items), True
    except Exception as exc:  # cbor2 raises several kinds for garbage; all mean the same here
        raise ProtocolError(f"{protocol.name}: {malformed(exc)}") from None
    if not whole:
        raise ProtocolError(f"{protocol.name}: junk after the message")
    # Nearly every message is a record after its action: that one is checked straight away.
    if type(message) is list and message:
        action = message[0]
        if type(action) is str and (spec := protocol.flat_records.get(action)) is not None:
            try:
                return action, spec.check_after_action(message, action)
            except ShapeError as exc:
                raise ProtocolError(f"{protocol.name}: {exc}") from None
    return _decode_other(protocol, message)


def _decode_other(protocol: Protocol, message: Any) -> tuple[str, Any]:
    """:func:`decode` of a *message* that is no record after its action: a bare action, an
    action with one value, or what is not a message of *protocol* at all."""
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
    if not isinstance(spec, Record) or protocol.framing == "nested":
        if len(fields) != 1:
            raise ProtocolError(f"{protocol.name}: {action} carries one value")
        fields = fields[0]
    try:
        return action, spec.check(fields, action)
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: {exc}") from None


def _decode_payload(protocol: Protocol, raw: memoryview) -> tuple[str, Any] | None:
    """The fast path of :func:`decode_frame`: a record of integers ending in a byte string,
    whose bytes come back as a view into *raw* rather than a copy. None for anything else."""
    major, count, pos = read_head(raw, 0)
    if major != 4:
        return None
    major, size, pos = read_head(raw, pos)
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
        major, value, pos = read_head(raw, pos)
        if major == 0:
            head.append(value)
        elif major == 1:
            head.append(-1 - value)
        else:
            return None
    major, size, pos = read_head(raw, pos)
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


# -- the "frames" framing (the original piwheels' file queue) -----------------------------------

_DIGITS = re.compile(rb"[0-9]{1,19}")


def _field_shapes(protocol: Protocol, spec: Shape | None) -> tuple[Shape, ...]:
    if spec is None:
        return ()
    shapes = spec.fields if isinstance(spec, Record) else (spec,)
    if any(shape is not Int and shape is not Bytes for shape in shapes):
        raise ProtocolError(f"{protocol.name}: only ints and bytes travel as frames")
    return shapes


def encode_frames(protocol: Protocol, action: str, data: Any = NO_DATA) -> list[bytes]:
    """*action* with *data* as frames: the action in ASCII, then each field (an int in ASCII
    digits, bytes as they are), checked as :func:`encode` checks."""
    try:
        spec = protocol.send[action]
    except KeyError:
        raise ProtocolError(f"{protocol.name}: may not send {action!r}") from None
    shapes = _field_shapes(protocol, spec)
    if spec is not None:
        try:
            spec.validate(data, action)
        except ShapeError as exc:
            raise ProtocolError(f"{protocol.name}: refusing to send {exc}") from None
    values = () if spec is None else data if isinstance(spec, Record) else (data,)
    fields = zip(shapes, values, strict=True)
    return [action.encode("ascii"), *(b"%d" % v if s is Int else bytes(v) for s, v in fields)]


def decode_frames(protocol: Protocol, frames: Sequence[bytes | memoryview]) -> tuple[str, Any]:
    """The ``(action, data)`` of a message in *frames*, as :func:`encode_frames` makes them. A
    byte string that ends the message stays what it came as (a view into a frame: no copy)."""
    try:
        action = bytes(frames[0][:64]).decode("ascii")
        spec = protocol.recv[action]
    except (UnicodeDecodeError, KeyError):
        raise ProtocolError(
            f"{protocol.name}: unknown message {describe_value(bytes(frames[0][:64]))}"
        ) from None
    shapes = _field_shapes(protocol, spec)
    if len(frames) != 1 + len(shapes):
        raise ProtocolError(f"{protocol.name}: {action} takes {len(shapes)} fields")
    values: list[Any] = []
    for shape, frame in zip(shapes, frames[1:], strict=True):
        if shape is Bytes:
            values.append(frame)
        elif _DIGITS.fullmatch(frame):
            values.append(int(bytes(frame)))
        else:
            found = describe_value(bytes(frame[:64]))
            raise ProtocolError(f"{protocol.name}: {action}: expected an int, found {found}")
    if spec is None:
        return action, NO_DATA
    if not isinstance(spec, Record):
        values = values[0]
    try:
        if isinstance(spec, Record) and shapes[-1] is Bytes:  # the bytes are taken as they are
            head = [s.check(v, action) for s, v in zip(shapes, values[:-1], strict=False)]
            return action, spec.into(*head, values[-1]) if spec.into else (*head, values[-1])
        return action, spec.check(values, action)
    except ShapeError as exc:
        raise ProtocolError(f"{protocol.name}: {exc}") from None
