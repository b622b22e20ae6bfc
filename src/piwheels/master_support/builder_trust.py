"""Who may build for the master (#19): its key pair, the builders it trusts, and the ZAP handler
that lets only those onto the builder queues.

The builder queues (the Slave Driver's and the File Juggler's) are CurveZMQ servers. A builder
connects with its own key pair; libzmq asks the context's ZAP handler (ZeroMQ RFC 27,
:class:`BuilderAuthenticator`) whether that public key may connect, and an unknown one is
turned away in the handshake, never reaching a task. Every message then carries the key it
came with (its ``User-Id``), and the tasks check it again on each message: a key revoked since
its builder connected is refused at its next message, and a queue with no ZAP handler behind it
(a task run alone) admits no one, rather than everyone as libzmq would.

The master's own key is trusted too: ``piw-import``, run as the master's user, sends files with
it.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from zmq.utils import z85

from piwheels.builder_keys import (
    KEY_LENGTH,
    MASTER_KEY,
    TRUSTED,
    TrustedKeys,
    fingerprint,
    key_pair,
    serve_securely,
)
from piwheels.master_support.queue_guard import GUARD_INTERVAL, QueueGuard
from piwheels.master_support.task import Task
from piwheels.protocols import Protocol
from piwheels.transport import Socket

log = logging.getLogger(__name__)

# Unknown keys are logged once each; past this many the rest are counted, not remembered.
MAX_REFUSALS_REMEMBERED = 10_000


class BuilderTrust:
    """The master's key pair and the builders it trusts, both kept in *key_dir*.

    With *make*, a missing key pair is made (the master's first start); the tasks, started
    after it, only read it.
    """

    def __init__(self, key_dir: Path, *, make: bool = False) -> None:
        self.key_dir = key_dir
        self.pair, self.made = key_pair(key_dir, MASTER_KEY, make=make)
        self.trusted = TrustedKeys(key_dir / TRUSTED)
        self._refused: set[str] = set()
        self._more_refused = 0
        self._lock = threading.Lock()

    @property
    def public_key(self) -> str:
        return self.pair.public.decode("ascii")

    def admits(self, key: str) -> bool:
        """Whether a peer presenting the public *key* (Z85) may talk to the builder queues."""
        if not key:
            return False
        if key == self.public_key:
            return True
        return self.trusted.is_trusted(key.encode("ascii", "replace")) is not None

    def name(self, key: str) -> str:
        """Who the builder with the public *key* (Z85) is, for people: the label it was
        trusted under, else its key's fingerprint."""
        trusted = self.trusted.is_trusted(key.encode("ascii", "replace")) if key else None
        if trusted is not None and trusted.label:
            return trusted.label
        return describe_key(key) if key else ""

    def first_refusal(self, key: str) -> bool:
        """Whether *key* is refused here for the first time (so the caller logs it once)."""
        with self._lock:
            if key in self._refused:
                return False
            if len(self._refused) >= MAX_REFUSALS_REMEMBERED:
                self._more_refused += 1
                return self._more_refused % MAX_REFUSALS_REMEMBERED == 1
            self._refused.add(key)
            return True

    def forgive(self, key: str) -> None:
        """Log *key*'s next refusal again (it was trusted meanwhile, so a later refusal is
        news: it was revoked)."""
        with self._lock:
            self._refused.discard(key)


def describe_key(key: str) -> str:
    """A builder's key for the log: its fingerprint, or what is wrong with it."""
    try:
        if len(key) == KEY_LENGTH:
            return fingerprint(key.encode("ascii"))
    except (ValueError, KeyError, UnicodeEncodeError):
        pass
    return "(not a CurveZMQ key)"


ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks a context's ZAP handler
ZAP_VERSION = b"1.0"
_ZAP_SLICE_MS = 100  # how often the handler's thread looks whether it is to stop


class BuilderAuthenticator:
    """The ZAP handler of the master's context, on a thread of its own: a connection to a
    builder queue is let in only with a key *trust* admits, and each key turned away is logged
    once, with where it came from and how to trust it.

    pyzmq's ThreadAuthenticator did this job, polling its socket through asyncio: now and then
    (a loaded machine, once in a few test runs) a request went unseen until the next came, and
    the builder's handshake stalled for libzmq's 30 s. A plain zmq_poll cannot miss one.
    """

    def __init__(self, context: zmq.Context[Any], trust: BuilderTrust) -> None:
        self.context = context
        self.trust = trust
        self._stopping = threading.Event()
        self._socket: zmq.Socket[Any] | None = None
        self.thread = threading.Thread(target=self._serve, name="ZAP", daemon=True)

    def start(self) -> None:
        # bound here, before the builder queues are: no handshake finds no handler
        self._socket = self.context.socket(zmq.REP)
        self._socket.linger = 1
        self._socket.bind(ZAP_ENDPOINT)
        self.thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.thread.is_alive():
            self.thread.join()

    def _serve(self) -> None:
        sock = self._socket
        assert sock is not None
        try:
            while not self._stopping.is_set():
                if sock.poll(_ZAP_SLICE_MS):
                    request = sock.recv_multipart()
                    try:
                        reply = self.answer(request)
                    except Exception:  # a REP owing its reply would stall every handshake
                        log.exception("cannot answer a ZAP request; refused")
                        request_id = request[1] if len(request) > 1 else b""
                        reply = [ZAP_VERSION, request_id, b"500", b"internal error", b"", b""]
                    sock.send_multipart(reply)
        finally:
            sock.close()

    def answer(self, request: list[bytes]) -> list[bytes]:
        """The reply to one ZAP request: 200 with the key as the User-Id, or 400."""
        request_id = request[1] if len(request) > 1 else b""

        def reply(status: bytes, text: bytes, user_id: bytes = b"") -> list[bytes]:
            return [ZAP_VERSION, request_id, status, text, user_id, b""]

        if len(request) < 6 or request[0] != ZAP_VERSION:
            log.error("refused a malformed ZAP request (%d frames)", len(request))
            return reply(b"400", b"malformed request")
        address, mechanism, credentials = request[3], request[5], request[6:]
        if mechanism == b"NULL":  # a plain queue (--insecure-*): open by the operator's choice
            return reply(b"200", b"OK", b"anonymous")
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            return reply(b"400", b"CurveZMQ only")
        key = z85.encode(credentials[0]).decode("ascii")
        if self.callback(address.decode("ascii", "replace"), key):
            return reply(b"200", b"OK", key.encode("ascii"))
        return reply(b"400", b"not a trusted builder")

    def callback(self, address: str, key: str) -> bool:
        """Whether the builder with the public *key* (Z85), connecting from *address*, may."""
        try:
            if self.trust.admits(key):
                self.trust.forgive(key)
                return True
            if self.trust.first_refusal(key):
                log.warning(
                    "refused a builder from %s: its key %s is not trusted "
                    "(to trust it: piw-trust add %s)",
                    address or "a local address",
                    describe_key(key),
                    shlex.quote(key),  # Z85 has characters a shell would take
                )
        except Exception:  # an exception here would stop the ZAP thread, and every handshake
            log.exception("cannot check a builder's key; refused")
        return False


def load_trust(key_dir: Path | None) -> BuilderTrust | None:
    """The tasks' view of the master's keys (made by the master before them), if it has any."""
    return None if key_dir is None else BuilderTrust(key_dir)


def open_builder_queues(
    task: Task,
    protocol: Protocol,
    secure: str,
    insecure: str | None,
    trust: BuilderTrust | None,
    setup: Callable[[zmq.Socket[Any]], None],
    *,
    max_memory: int,
    **options: Any,
) -> list[Socket]:
    """A task's ROUTER sockets for builders, bound: at *secure* (a CurveZMQ server if there is
    *trust*, else plain) and, where the operator opened one, at *insecure* (plain). *setup*
    sets each one's own options before it binds. A message's sender is known by the queue it
    came on as well as its routing id: two peers of two queues may have the same. While the
    master holds more than *max_memory* bytes, their connections are ended (see QueueGuard)."""
    queues = []
    for address, keyed in ((secure, trust is not None), (insecure, False)):
        if address is None:
            continue
        sock = task.socket(zmq.ROUTER, protocol, peer_keys=keyed, **options)
        if keyed:
            assert trust is not None
            serve_securely(sock.zsock, trust.pair)
        setup(sock.zsock)
        sock.bind(address)
        queues.append(sock)
    task.every(GUARD_INTERVAL, QueueGuard(task.log, queues, max_memory).check)
    return queues
