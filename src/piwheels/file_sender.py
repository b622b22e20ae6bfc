"""The sending side of the File Juggler protocol, shared by build slaves and ``piw-import``.

The sender says HELLO with its slave id on a DEALER socket and then answers each FETCH with the
CHUNK it asks for, until the File Juggler says DONE; a slave then sends its next file on the
same connection. Whether the file arrived intact is not
decided here: the sender then tells the Slave Driver (or Mr. Chase) SENT, and the master, which
knows the size and SHA256 it expects, answers with DONE or asks for the file again.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Self

import zmq

from piwheels import protocols
from piwheels.builder_keys import ClientKeys
from piwheels.heap import serve_from_heap
from piwheels.message_codec import ProtocolError
from piwheels.transport import POLL_SLICE, Socket

__all__ = ["MAX_CHUNK", "FileConnection", "answer_fetch", "send_file"]

log = logging.getLogger(__name__)

# A FETCH asks for one chunk; anything larger than this is a confused master, not a chunk, and
# would make us hold that much in memory.
MAX_CHUNK = 16 * 1024 * 1024


def send_file(
    context: zmq.Context[Any],
    address: str,
    slave_id: int,
    wheel: BinaryIO,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    check_stop: Callable[[], None] = lambda: None,
    on_chunk: Callable[[int, int], None] | None = None,
    routing_id: bytes | None = None,
    keys: ClientKeys | None = None,
) -> bool:
    """Serve the File Juggler at *address* the FETCHes for *wheel* until it says DONE, on a
    connection of its own (see :class:`FileConnection`, which this opens and closes)."""
    with FileConnection(context, address, routing_id=routing_id, keys=keys) as connection:
        return connection.send(
            slave_id, wheel, timeout=timeout, clock=clock, check_stop=check_stop, on_chunk=on_chunk
        )


class FileConnection:
    """A DEALER to the File Juggler at *address*, for one file or for many in turn.

    A slave keeps one for its whole conversation with the master: a file connection made for
    each build costs both ends a handshake (with builder keys, CurveZMQ's key exchange and a
    ZAP request) for a wheel that is often a few kB. *routing_id* is the one the sender's request
    socket has: the File Juggler takes a slave's file only from that slave's connection; with
    *keys*, the connection is a CurveZMQ one, as the sender's requests are.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        address: str,
        *,
        routing_id: bytes | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self._context = context
        self._address = address
        self._routing_id = routing_id
        self._keys = keys
        self._sock: Socket | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connected(self) -> Socket:
        if self._sock is None:
            sock = Socket(zmq.DEALER, reversed(protocols.file_juggler), context=self._context)
            # The master may be named by an IPv6 address or a name that resolves to one.
            sock.zsock.setsockopt(zmq.IPV6, 1)
            if self._routing_id is not None:
                sock.zsock.setsockopt(zmq.ROUTING_ID, self._routing_id)
            if self._keys is not None:
                self._keys.secure(sock.zsock)
            sock.connect(self._address)
            self._sock = sock
        return self._sock

    def send(
        self,
        slave_id: int,
        wheel: BinaryIO,
        *,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        check_stop: Callable[[], None] = lambda: None,
        on_chunk: Callable[[int, int], None] | None = None,
    ) -> bool:
        """Serve the FETCHes for *wheel* until the File Juggler says DONE.

        Returns True on DONE, False if the File Juggler was silent for *timeout* seconds: a
        silent File Juggler ends the transfer, not the caller's conversation, because SENT goes
        to a task that knows whether the file arrived and asks again if not. *check_stop* is
        called between waits and may raise to abandon the transfer; *on_chunk* hears
        ``(offset, length)`` of each CHUNK sent (a repeated FETCH is reported again).

        Only a transfer that ended in DONE leaves the connection open for the next file: after
        any other end a FETCH of this file may still come, and would be answered from the next.
        """
        sock = self._connected()
        deadline = clock() + timeout

        def waiting() -> None:
            check_stop()
            if clock() >= deadline:  # the latest deadline: each FETCH moves it on
                raise _QuietError

        done = False
        try:
            sock.send_unstuck("HELLO", slave_id, waiting=waiting)
            while True:
                waiting()
                if not sock.poll(POLL_SLICE * 1000):
                    continue
                try:
                    action, data = sock.recv()
                except ProtocolError as exc:
                    log.error("ignoring a message from the file juggler: %s", exc)
                    continue
                if action == "DONE":
                    log.info("sent %s", wheel.name)
                    done = True
                    return True
                offset, length = data
                if answer_fetch(sock, wheel, offset, length) and on_chunk is not None:
                    on_chunk(offset, length)
                deadline = clock() + timeout
        except _QuietError:
            log.warning("the file juggler went quiet during %s; giving up", wheel.name)
            return False
        finally:
            if not done:
                self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _QuietError(Exception):
    """The File Juggler said nothing for the whole timeout."""


def answer_fetch(sock: Socket, wheel: BinaryIO, offset: int, length: int) -> bool:
    """Send the CHUNK that FETCH *offset*, *length* asks for, if it lies within the file.

    Returns whether the chunk was sent.
    """
    size = os.fstat(wheel.fileno()).st_size
    if offset < 0 or not 0 < length <= MAX_CHUNK or offset + length > size:
        log.error(
            "refusing FETCH %d+%d of %s, which has %d bytes", offset, length, wheel.name, size
        )
        return False
    # A frame per chunk: from the heap, or each would arrive on freshly faulted-in pages.
    serve_from_heap(length)
    fd = wheel.fileno()

    def fill(payload: memoryview) -> None:
        # Read straight into the outgoing frame: no bytes object, no copy through the encoder.
        done = 0
        while done < length:
            read = os.preadv(fd, [payload[done:]], offset + done)
            if not read:
                raise EOFError(f"{wheel.name} ended at {offset + done} bytes")
            done += read

    try:
        # Never blocks on a stalled master: it will FETCH a lost chunk again.
        sock.send_filled("CHUNK", (offset,), length, fill, flags=zmq.NOBLOCK)
    except zmq.Again:
        log.warning("dropped chunk %d of %s: the master is not reading", offset, wheel.name)
        return False
    except (EOFError, OSError) as exc:
        log.error("cannot read chunk %d of %s: %s", offset, wheel.name, exc)
        return False
    return True
