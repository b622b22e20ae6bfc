"""The slave's connections to the master for one conversation: a REQ socket to the Slave Driver,
and the File Juggler's connection its files go by.

A REQ socket is simple to talk on and hard to recover: once a request is out, it cannot send
again until the reply arrives. So a :class:`MasterLink` is made for each conversation (from HELLO)
and thrown away when anything goes wrong; each way it can go wrong is an exception of its own,
which the agent turns into its next step (see :class:`piwheels.slave.agent.PiwSlave`).
"""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from piwheels import protocols
from piwheels.builder_keys import ClientKeys
from piwheels.file_sender import FileConnection
from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA
from piwheels.transport import POLL_SLICE, Socket, private_routing_id

__all__ = [
    "HEARTBEAT_INTERVAL_MS",
    "HEARTBEAT_TIMEOUT_MS",
    "MasterConfusedError",
    "MasterGoneError",
    "MasterLink",
    "MasterRefusedError",
    "MasterSaidDieError",
    "MasterTimeoutError",
]

log = logging.getLogger(__name__)

# ZeroMQ heartbeats on the connection to the master: a master gone without closing it (its
# machine lost, the process frozen) is noticed after HEARTBEAT_TIMEOUT, not master_timeout.
HEARTBEAT_INTERVAL_MS = 2000
HEARTBEAT_TIMEOUT_MS = 10_000
# What the connection to the master can tell us by its monitor (see MasterLink.check).
_CONNECTION_EVENTS = (
    zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)


class MasterTimeoutError(Exception):
    """The master did not answer in time: start again from HELLO."""


class MasterConfusedError(Exception):
    """The master said something invalid at this point: start again from HELLO."""


class MasterGoneError(Exception):
    """The connection to the master was lost (it stopped, or was replaced): say HELLO to the
    one there now at once, keeping any build in hand."""


class MasterRefusedError(Exception):
    """The handshake with the master failed: it refused our key, or it is not the master whose
    key we were given, or one of us speaks CurveZMQ and the other does not."""


class MasterSaidDieError(Exception):
    """The master said DIE."""


class MasterLink:
    """A REQ connection to the Slave Driver at *address*, and (once a file is sent) one to the
    File Juggler at *file_address*, which bears the same routing id.

    Every wait on it calls *check_stop* each :data:`POLL_SLICE` (which stops the wait by
    raising) and gives up after *timeout* seconds of the master's silence.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        address: str,
        keys: ClientKeys | None,
        *,
        file_address: str,
        timeout: float,
        clock: Callable[[], float],
        check_stop: Callable[[], None],
    ) -> None:
        self._keys = keys
        self._timeout = timeout
        self._clock = clock
        self._check_stop = check_stop
        sock = Socket(zmq.REQ, reversed(protocols.slave_driver), context=context)
        # The master may be named by an IPv6 address or a name that resolves to one.
        sock.zsock.setsockopt(zmq.IPV6, 1)
        # Our file connections bear the same id: only they may send this slave's files.
        self.routing_id = private_routing_id()
        sock.zsock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        sock.zsock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_INTERVAL_MS)
        sock.zsock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        if keys is not None:
            keys.secure(sock.zsock)
        # A lost connection means a master that stopped or was replaced: a request sent on
        # would go to the next one, which knows nothing of us and would never answer it.
        self._monitor: zmq.Socket[Any] = sock.zsock.get_monitor_socket(_CONNECTION_EVENTS)
        sock.connect(address)
        self._sock: Socket | None = sock
        # A REQ socket alternates send and receive; this says which one is next.
        self._awaiting_reply = False
        self.files = FileConnection(context, file_address, routing_id=self.routing_id, keys=keys)

    def request(self, action: str, data: Any = NO_DATA) -> tuple[str, Any]:
        """Send *action* and return the master's reply; DIE, wherever it comes, is raised."""
        sock = self._sock
        assert sock is not None
        deadline = self._clock() + self._timeout

        def waiting() -> None:
            self._check_stop()
            self.check()
            if self._clock() >= deadline:
                raise MasterTimeoutError(f"no answer to {action} within {self._timeout:g}s")

        waiting()
        sock.send_unstuck(action, data, waiting=waiting)
        self._awaiting_reply = True
        while not sock.poll(POLL_SLICE * 1000):
            waiting()
        try:
            reply, reply_data = sock.recv()
        except ProtocolError as exc:
            raise MasterConfusedError(str(exc)) from None
        finally:
            self._awaiting_reply = False
        if reply == "DIE":
            raise MasterSaidDieError
        return reply, reply_data

    def check(self) -> None:
        """Raise MasterGoneError if the connection to the master was lost since it was made,
        or MasterRefusedError if it could not be made for the keys."""
        if not self._monitor.poll(0):
            return
        event = recv_monitor_message(self._monitor)["event"]
        keys = self._keys
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and keys is not None:
            raise MasterRefusedError(
                f"the master refused this slave's key {keys.pair.fingerprint}: its operator "
                f"must trust it (piw-trust add {shlex.quote(keys.pair.public.decode())})"
            )
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            raise MasterRefusedError(
                "the handshake with the master failed: it does not hold the key given with "
                "--master-key"
            )
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            raise MasterRefusedError(
                "the master's queue and this slave disagree on security: one speaks CurveZMQ "
                "and the other does not (see piw-slave --master-key and --insecure)"
            )
        raise MasterGoneError("the connection to the master was lost")

    def say_bye(self, linger: float) -> None:
        """Tell the master we are going, waiting at most *linger* seconds, and close."""
        sock = self._sock
        if sock is None:
            return
        if self._awaiting_reply:
            # A REQ socket cannot send until the reply to its last request arrives.
            if not sock.poll(linger * 1000):
                log.warning("cannot say BYE: the master has not answered our last message")
                return
            with contextlib.suppress(ProtocolError):  # whatever it was, it is out of the way
                sock.recv()
            self._awaiting_reply = False
        try:
            sock.send("BYE", flags=zmq.NOBLOCK)
        except zmq.Again:
            log.warning("cannot say BYE: no connection to the master")
            return
        # The socket is closed with a linger so that BYE still leaves: the master answers
        # nothing to it, so there is nothing to wait for.
        sock.zsock.close(linger=int(linger * 1000))
        self._sock = None

    def close(self) -> None:
        self.files.close()
        if self._sock is not None:
            # Told first: events sent to a monitor that is gone can stall libzmq's I/O thread.
            self._sock.zsock.disable_monitor()
        self._monitor.close(linger=0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
