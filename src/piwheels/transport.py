"""ZeroMQ sockets that speak a :class:`~piwheels.protocols.Protocol` in CBOR.

This is the only module that turns bytes from the wire into messages. Whatever is wrong with
what arrives (not CBOR, an unknown action, data of the wrong shape) becomes one exception,
:class:`ProtocolError`, which a task logs before dropping the message and carrying on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Self

import cbor2
import zmq

from piwheels.codec import ShapeError
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


def _encode_default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, timedelta):
        seconds, micros = divmod(value // timedelta(microseconds=1), 1_000_000)
        encoder.encode(cbor2.CBORTag(DURATION_TAG, {1: seconds, -6: micros}))
    elif isinstance(value, frozenset | set):
        encoder.encode(list(value))
    else:
        raise cbor2.CBOREncodeTypeError(f"cannot send a {type(value).__name__}")


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


def decode(protocol: Protocol, raw: bytes) -> tuple[str, Any]:
    """Decode *raw* into ``(action, data)``, checking it is something *protocol* may receive."""
    try:
        message = cbor2.loads(raw, tag_hook=_decode_tag)
    except ProtocolError:
        raise
    except Exception as exc:  # cbor2 raises several kinds for garbage; all mean the same here
        raise ProtocolError(f"{protocol.name}: not a CBOR message ({exc})") from None
    if isinstance(message, str):
        action, fields = message, None
    elif isinstance(message, list) and message and isinstance(message[0], str):
        action, fields = message[0], message[1:]
    else:
        raise ProtocolError(f"{protocol.name}: not a message: {str(message)[:60]!r}")
    try:
        spec = protocol.recv[action]
    except KeyError:
        raise ProtocolError(f"{protocol.name}: unknown message {action[:40]!r}") from None
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


class Socket:
    """A ZeroMQ socket bound to one protocol.

    ROUTER sockets prefix every message with the peer's address; :meth:`send_to` and
    :meth:`recv_from` handle that frame, :meth:`send` and :meth:`recv` the rest.
    """

    def __init__(
        self,
        kind: int,
        protocol: Protocol,
        *,
        context: zmq.Context[Any] | None = None,
        max_message_size: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.zsock: zmq.Socket[Any] = (context or zmq.Context.instance()).socket(kind)
        # Closing must never block a stopping task on undelivered messages.
        self.zsock.setsockopt(zmq.LINGER, 0)
        if max_message_size is not None:
            # A hostile peer must not make us allocate without bound; libzmq drops it early.
            self.zsock.setsockopt(zmq.MAXMSGSIZE, max_message_size)

    def bind(self, address: str) -> Self:
        self.zsock.bind(address)
        return self

    def connect(self, address: str) -> Self:
        self.zsock.connect(address)
        return self

    def close(self) -> None:
        self.zsock.close(linger=0)

    def poll(self, timeout_ms: float) -> bool:
        return bool(self.zsock.poll(timeout_ms))

    def send(self, action: str, data: Any = NO_DATA, *, flags: int = 0) -> None:
        payload = encode(self.protocol, action, data)
        if self.zsock.type == zmq.DEALER:
            # A DEALER talks to a ROUTER: keep the REQ-style empty delimiter so the ROUTER end
            # sees one envelope shape whatever kind of socket the peer uses.
            self.zsock.send_multipart([b"", payload], flags)
        else:
            self.zsock.send(payload, flags)

    def recv(self, *, flags: int = 0) -> tuple[str, Any]:
        if self.zsock.type == zmq.DEALER:
            frames = self.zsock.recv_multipart(flags, copy=True)
            if len(frames) != 2 or frames[0] != b"":
                raise ProtocolError(f"{self.protocol.name}: malformed envelope")
            return decode(self.protocol, frames[1])
        return decode(self.protocol, self.zsock.recv(flags, copy=True))

    def send_to(self, address: bytes, action: str, data: Any = NO_DATA) -> None:
        self.zsock.send_multipart([address, b"", encode(self.protocol, action, data)])

    def recv_from(self) -> tuple[bytes, str, Any]:
        """Receive from a ROUTER: ``(address, action, data)``.

        The address is returned even when the message is bad (inside the ProtocolError's
        ``address`` attribute) so the caller can log which peer misbehaved.
        """
        frames = self.zsock.recv_multipart(copy=True)
        address = frames[0]
        if len(frames) != 3 or frames[1] != b"":
            raise ProtocolError(
                f"{self.protocol.name}: malformed envelope ({len(frames)} frames)", address
            )
        try:
            action, data = decode(self.protocol, frames[2])
        except ProtocolError as exc:
            raise ProtocolError(str(exc), address) from None
        return address, action, data

    def send_raw_to(self, address: bytes, payload: bytes) -> None:
        self.zsock.send_multipart([address, b"", payload])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
