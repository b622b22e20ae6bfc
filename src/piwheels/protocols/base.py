"""What a protocol is: the messages each end of a socket may send, and the replies they get.

Each :class:`Protocol` is written from the master's side: ``recv`` is what the master's task
receives, ``send`` what it sends. The peer uses ``reversed(protocol)``. A message with no data
travels as a bare string (``"IDLE"``); one whose data is a record travels as ``[action, *fields]``
(``["BUILD", "numpy", "1.14.0"]``), and any other as ``[action, data]`` — the seed's wire format.

The master's own request queues (the Oracles, the File Juggler's control) answer each request
with ``["OK", data]`` or ``["ERROR", [kind, message]]``: ``replies`` declares the shape of each
request's OK, ``errors`` the kinds an ERROR may carry. Code decides on a kind, never on words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

from piwheels.codec import AnyValue, Reason, Record, Shape, ShapeError, Str


class NoData:
    """Marks a message that carries no data (sent as a bare string)."""


NO_DATA = NoData()
Spec = Shape | None  # None: the message has no data
# How a protocol's messages travel (see Protocol): the spec's, and the original piwheels'.
Framing = Literal["flat", "nested", "frames"]

# The most CBOR items a peer's message may hold: a BUILT of 100 files, each with 256
# dependencies, is ~78,000. Decoded, 100,000 items are a few MB; unbounded, 8 MB of empty
# arrays decoded into 8 million lists took ~600 MB.
PEER_MAX_ITEMS = 100_000


class Failure(NamedTuple):
    """An ERROR on the master's request queues: its kind (one the protocol declares) decides
    what the asker does; the message is for the log."""

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


FAILURE = Record([Str, Reason], Failure)


@dataclass(frozen=True)
class Protocol:
    """The messages one end of a socket may receive and send.

    ``max_items`` marks a protocol spoken with peers outside the master (slaves, operators'
    tools): a message of more CBOR items than that is refused before it is decoded (see
    :mod:`piwheels.transport`). The master's tasks trust each other and have no such bound.

    ``framing`` is how a message travels. "flat", the spec's: one CBOR frame, a record's fields
    after the action. "nested", the original piwheels': one CBOR frame ``[action, data]`` also
    for a record (``["BUILD", ["numpy", "1.14.0"]]``). "frames", the original's file queue: no
    CBOR, one ZeroMQ frame for the action (ASCII) and one per field, an int in ASCII digits.
    """

    name: str
    recv: dict[str, Spec] = field(default_factory=dict)
    send: dict[str, Spec] = field(default_factory=dict)
    max_items: int | None = None
    replies: dict[str, Spec] = field(default_factory=dict)  # request -> its OK's data
    errors: frozenset[str] = frozenset()  # the kinds of its ERRORs
    framing: Framing = "flat"

    def __reversed__(self) -> Protocol:
        return Protocol(
            f"{self.name} (peer)",
            recv=self.send,
            send=self.recv,
            max_items=self.max_items,
            replies=self.replies,
            errors=self.errors,
            framing=self.framing,
        )

    @cached_property
    def flat_records(self) -> dict[str, Record]:
        """The records this end receives as ``[action, *fields]`` (none where "nested")."""
        if self.framing != "flat":
            return {}
        return {action: spec for action, spec in self.recv.items() if isinstance(spec, Record)}

    @cached_property
    def flat_sends(self) -> dict[str, Record]:
        """The records this end sends as ``[action, *fields]`` (none where "nested")."""
        if self.framing != "flat":
            return {}
        return {action: spec for action, spec in self.send.items() if isinstance(spec, Record)}

    def answer(self, request: str, status: str, data: Any) -> Any:
        """The reply to *request* as its declared type: OK's data, or a :class:`Failure`: the
        ERROR's, or one of kind "malformed" for an answer of no declared shape."""
        if status == "ERROR":
            if isinstance(data, Failure) and data.kind in self.errors:
                return data
            return _malformed(f"{request}: an ERROR of no declared kind")
        if status != "OK":
            return _malformed(f"{request}: {status} is no reply")
        shape = self.replies.get(request)
        try:
            return None if shape is None else shape.check(data, f"{request} reply")
        except ShapeError as exc:
            return _malformed(str(exc))

    def failure(self, kind: str, message: str) -> Failure:
        """An ERROR to send: only of a kind this protocol declares."""
        if kind not in self.errors:
            raise ValueError(f"{self.name}: no error kind {kind!r}")
        return Failure(kind, message)


@dataclass(frozen=True)
class Dialect:
    """One way a task's peers speak its protocol (the spec's, or the original piwheels'):
    what goes on the wire, checked both ways as every protocol is, and how its messages become
    the ones the task handles, and back.

    ``incoming`` turns the data of an action received into what the task handles;
    ``outgoing``, what the task sends into what travels. An action in neither is the same.
    """

    name: str
    protocol: Protocol
    incoming: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    outgoing: dict[str, Callable[[Any], Any]] = field(default_factory=dict)

    def received(self, action: str, data: Any) -> Any:
        convert = self.incoming.get(action)
        return data if convert is None else convert(data)

    def to_send(self, action: str, data: Any) -> Any:
        convert = self.outgoing.get(action)
        return data if convert is None else convert(data)


def _malformed(why: str) -> Failure:
    return Failure("malformed", f"malformed answer: {why}")


def request_reply(requests: dict[str, tuple[Spec, Spec]], errors: set[str]) -> dict[str, Any]:
    """The fields of a request/reply protocol from ``{request: (its data, its OK's data)}``:
    its OK travels checked only as a value (``AnyValue``), then as the request's reply."""
    return {
        "recv": {action: request for action, (request, _) in requests.items()},
        "send": {"OK": AnyValue(), "ERROR": FAILURE},
        "replies": {action: reply for action, (_, reply) in requests.items()},
        "errors": frozenset(errors),
    }
