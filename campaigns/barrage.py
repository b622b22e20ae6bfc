"""The hostile campaign's machinery: sockets on the master's queues, budgets, and a scheduler.

Scenarios are generators run in turn on one thread (see :class:`Barrage`); :class:`Zmtp` is a
status-queue subscriber written by hand.

The builder queues are there twice: the secure ones ("slave", "file": CurveZMQ, where the
campaign's hostile builders connect with a key the master trusts) and the insecure ones
("insecure-slave", "insecure-file": plain, where anyone may). The decoders behind them are the
same, so every hostile message goes to both. Strangers (:class:`Stranger`: no CurveZMQ, a key
the master does not trust, the wrong master key) knock on the secure ones and must get nothing;
each one's handshakes are watched through a monitor socket.
"""

from __future__ import annotations

import argparse
import random
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import cbor2
import zmq
from packaging.utils import canonicalize_name
from zmq.utils.monitor import recv_monitor_message

from campaigns.farm import Farm
from campaigns.messages import (
    CATALOGUE_PROJECTS,
    CATALOGUE_VERSIONS,
    action_of,
    cbor,
    decoded,
)
from piwheels.builder_keys import ClientKeys, KeyPair

# The queues the barrage sends to, each with its own budget, in the report's order.
QUEUES = ("slave", "insecure-slave", "file", "insecure-file", "import", "control", "status")
SECURE_QUEUES = ("slave", "file")
HOSTILE_LABEL = "campaign-hostile"  # the trusted key of the hostile builders on the secure queues
WATCHED = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
PROTOCOL_ERRORS = {
    getattr(zmq, name): name.removeprefix("PROTOCOL_ERROR_")
    for name in dir(zmq)
    if name.startswith("PROTOCOL_ERROR_")
}


def protocol_of(queue: str) -> str:
    """The protocol a queue speaks: an insecure builder queue speaks its secure twin's."""
    return queue.removeprefix("insecure-")


def file_queue_of(slave_queue: str) -> str:
    """The file queue a slave on *slave_queue* sends its files to (the secure one's, or the
    insecure one's: a file connection must come with its slave's key, or with none)."""
    return slave_queue.replace("slave", "file")


class Zmtp:
    """A subscriber on the status queue speaking ZMTP 3.0 by hand, over the ipc socket.

    libzmq's own SUB and XSUB keep every subscription they send in a trie that they free
    recursively, byte by byte: closing one that had sent a 4 MB subscription overflowed the
    stack of this process's libzmq reaper thread. By hand, a subscription is just bytes.
    """

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.alive = True
        try:
            self.sock.connect(address.removeprefix("ipc://"))
            greeting = b"\xff" + bytes(8) + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\0")
            ready = b"\x05READY" + b"\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB"
            self.sock.sendall(greeting + bytes(32) + b"\x04" + bytes([len(ready)]) + ready)
            self.read(64)  # its greeting
            flags = self.read(1)[0]  # its READY
            self.read(int.from_bytes(self.read(8 if flags & 0x02 else 1), "big"))
        except OSError:
            self.close()
            raise

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = self.sock.recv(size - len(data))
            if not more:
                raise ConnectionError("the master closed the connection")
            data += more
        return data

    def send(self, body: bytes) -> bool:
        """Send *body* as one message frame (a subscription if it starts with 1)."""
        if len(body) > 255:
            head = b"\x02" + len(body).to_bytes(8, "big")
        else:
            head = b"\x00" + bytes([len(body)])
        try:
            self.sock.sendall(head + body)
        except OSError:
            self.close()
            return False
        return True

    def close(self) -> None:
        self.alive = False
        self.sock.close()


# -- the barrage's machinery --------------------------------------------------------------------

# A scenario yields whenever it has sent something or must wait; some return a result.
Step = Generator[None, None, None]
Answer = Generator[None, None, list[Any] | None]  # a reply from the master, or None
Going = Generator[None, None, bool]  # whether a conversation can go on
Transfer = Generator[None, None, bool | None]  # True: DONE; None: silence or walked away


@dataclass(eq=False)
class Peer:
    """One socket of ours on one of the master's queues."""

    queue: str
    sock: zmq.Socket[Any]
    envelope: bool  # DEALERs talk to ROUTERs with REQ's empty delimiter frame
    keep: bool  # replies kept for the scenario (else only counted)
    inbox: deque[list[bytes]] = field(default_factory=deque)


@dataclass(eq=False)
class Stranger:
    """A peer the secure queue must not admit, with the monitor that sees its handshakes."""

    queue: str
    kind: str
    sock: zmq.Socket[Any]
    monitor: zmq.Socket[Any]
    handshaking: bool = False  # connected, its handshake not over yet


class Barrage:
    """Sockets, budgets, counters and a cooperative scheduler for scenarios.

    Scenarios are generators run in turn on this one thread, so a slow conversation (a rogue
    slave waiting for its reply) never holds up the rest, and every message's content comes
    from a generator seeded by the scenario's name: the same seed sends the same messages.
    """

    def __init__(self, farm: Farm, options: argparse.Namespace) -> None:
        self.farm = farm
        self.seed: int = options.seed
        self.budget: int = options.messages
        self.seconds: float = options.seconds
        self.context: zmq.Context[Any] = zmq.Context(io_threads=2)
        self.context.set(zmq.MAX_SOCKETS, 16384)
        self.poller = zmq.Poller()
        self.peers: dict[zmq.Socket[Any], Peer] = {}
        self.sent: Counter[tuple[str, str]] = Counter()
        self.sent_on: Counter[str] = Counter()
        self.replies: Counter[tuple[str, str]] = Counter()
        self.withheld: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[tuple[str, str]] = Counter()
        self.notes: Counter[str] = Counter()  # outcomes of rogue conversations
        self.wheels: dict[tuple[str, str], bytes] = {}  # the rogues' honest wheels, made once
        self.events: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.rate = 1.0  # messages a second on each queue; set by run()
        self.progress = False
        self.stopping = False
        self.rogue_ids: list[int] = []
        self.reserve: dict[str, int] = {}  # of each queue's budget, for floods and the like
        # The hostile builders' key on the secure queues: one the master trusts.
        self.keys: ClientKeys = farm.builder_keys(HOSTILE_LABEL)
        self.strangers: dict[zmq.Socket[Any], Stranger] = {}  # by socket and by monitor
        # Strangers' figures by (queue, kind, what): connections, handshakes refused (and how),
        # admitted (must be 0), messages offered, replies (must be 0), and more that the
        # scenarios note (a revoked builder's ACK while it was still trusted, say).
        self.handshakes: Counter[tuple[str, str, str]] = Counter()
        self.windows: dict[str, tuple[float, float]] = {}  # when a flood began and ended
        self.probes: list[tuple[float, float | None]] = []  # (when, seconds to ACK or None)
        self.silent_closed_after: list[float] = []  # seconds the master kept a silent peer

    # sockets

    def peer(
        self,
        queue: str,
        *,
        keep: bool = False,
        routing_id: bytes | None = None,
        keys: ClientKeys | None = None,
    ) -> Peer:
        """A socket on *queue*; on a secure queue, with the hostile builders' trusted key (or
        *keys*)."""
        kind = {"control": zmq.PUSH, "status": zmq.XSUB}.get(queue, zmq.DEALER)
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, routing_id)
        if queue in SECURE_QUEUES:
            (keys or self.keys).secure(sock)
        sock.connect(self.farm.addresses[queue])
        peer = Peer(queue, sock, envelope=kind == zmq.DEALER, keep=keep)
        if kind != zmq.PUSH:
            self.peers[sock] = peer
            self.poller.register(sock, zmq.POLLIN)
        return peer

    def close(self, peer: Peer, linger: int = 0) -> None:
        """Close *peer*'s socket; with *linger* (ms), what it still holds is sent meanwhile
        (a CurveZMQ handshake takes a while: what a peer sends at once waits for it)."""
        if peer.sock in self.peers:
            self.poller.unregister(peer.sock)
            del self.peers[peer.sock]
        peer.sock.close(linger=linger)

    # strangers

    def stranger(
        self, queue: str, kind: str, keys: ClientKeys | None, *, retry: bool = True
    ) -> Stranger:
        """A DEALER on the secure *queue* with *keys* (None: no CurveZMQ at all), watched.
        Unless it may *retry*, libzmq makes one connection, and one handshake, only."""
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if not retry:
            sock.setsockopt(zmq.RECONNECT_IVL, -1)
        if keys is not None:
            keys.secure(sock)
        monitor = sock.get_monitor_socket(WATCHED)
        stranger = Stranger(queue, kind, sock, monitor)
        for watched in (sock, monitor):
            self.strangers[watched] = stranger
            self.poller.register(watched, zmq.POLLIN)
        sock.connect(self.farm.addresses[queue])
        return stranger

    def unknown_keys(self) -> ClientKeys:
        """A key pair of a builder nobody trusted (with the master's right public key)."""
        public, secret = zmq.curve_keypair()
        return ClientKeys(KeyPair(public, secret), self.farm.master_key().public)

    def offer(self, stranger: Stranger, frames: list[bytes]) -> None:
        """Give a stranger's socket a message: it is sent once a handshake succeeds (never)."""
        try:
            stranger.sock.send_multipart([b"", *frames], zmq.NOBLOCK)
        except zmq.ZMQError:
            self.handshakes[(stranger.queue, stranger.kind, "messages not queued")] += 1
            return
        self.handshakes[(stranger.queue, stranger.kind, "messages offered")] += 1
        self.progress = True

    def watch(self, stranger: Stranger) -> None:
        """Count what the stranger's monitor saw, and anything the master sent it."""
        key = (stranger.queue, stranger.kind)
        for _ in range(1000):
            try:
                stranger.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.handshakes[(*key, "replies")] += 1
        for _ in range(1000):
            try:
                event = recv_monitor_message(stranger.monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            what, value = int(event["event"]), int(event["value"])
            if what == zmq.EVENT_CONNECTED:
                stranger.handshaking = True
                self.handshakes[(*key, "connections")] += 1
                continue
            if what == zmq.EVENT_DISCONNECTED:
                outcome = "refused: closed in the handshake" if stranger.handshaking else ""
            elif what == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                outcome = "admitted"
            elif what == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                outcome = f"refused: ZAP {value}"
            elif what == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                outcome = f"refused: {PROTOCOL_ERRORS.get(value, value)}"
            else:
                outcome = "refused: handshake failed"
            if outcome and stranger.handshaking:
                self.handshakes[(*key, outcome)] += 1
            stranger.handshaking = False

    def dismiss(self, stranger: Stranger) -> None:
        """Close a stranger (what its monitor saw counted first)."""
        if stranger.sock not in self.strangers:
            return
        self.watch(stranger)
        if stranger.handshaking:
            self.handshakes[(stranger.queue, stranger.kind, "closed by us mid-handshake")] += 1
        for watched in (stranger.sock, stranger.monitor):
            self.poller.unregister(watched)
            del self.strangers[watched]
        stranger.sock.disable_monitor()
        stranger.monitor.close(linger=0)
        stranger.sock.close(linger=0)

    def pump(self) -> None:
        """Take in whatever the master sent us, counting it by action."""
        if not self.peers and not self.strangers:
            return
        for sock, _ in self.poller.poll(0):
            stranger = self.strangers.get(sock)
            if stranger is not None:
                self.watch(stranger)
                continue
            peer = self.peers.get(sock)
            if peer is None:
                continue
            for _ in range(1000):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.replies[(peer.queue, action_of(frames[-1]))] += 1
                if peer.keep:
                    peer.inbox.append(frames)

    # budgets

    def exhausted(self, queue: str) -> bool:
        """Whether the paced scenarios are done with *queue*: they leave its reserve to the
        floods and conversations, which may spend the budget to the end."""
        return self.stopping or self.sent_on[queue] >= self.budget - self.reserve.get(queue, 0)

    def turn(self, queue: str) -> Step:
        """Wait until *queue* may take another message: the budget is spread over the time."""
        while not self.exhausted(queue):
            allowance = self.rate * (time.monotonic() - self.started) + 20
            if self.sent_on[queue] < allowance:
                return
            yield

    def send(self, peer: Peer, kind: str, frames: list[bytes], *, raw: bool = False) -> bool:
        """Send one message, within the queue's budget. Floods and conversations do not wait
        for their turn (see turn()): they overdraw the pace, and the fuzzers on that queue wait
        until it has caught up."""
        queue = peer.queue
        if self.sent_on[queue] >= self.budget:
            return False
        if queue in ("control", "import") and any(self.harmful(queue, f, kind) for f in frames):
            self.withheld[(queue, kind)] += 1
            return False
        if peer.envelope and not raw:
            frames = [b"", *frames]
        try:
            # Always copied: a zero-copy frame still queued when the context is destroyed
            # (the master gone, say) has crashed this process.
            peer.sock.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError:  # zmq.Again among them: our HWM, or the master hung up
            self.count(queue, kind, sent=False)
            return False
        self.count(queue, kind, sent=True)
        return True

    def count(self, queue: str, kind: str, sent: bool) -> None:
        """Count a message sent other than through send() (the status queue's, by hand)."""
        if sent:
            self.sent[(queue, kind)] += 1
            self.sent_on[queue] += 1
            self.progress = True
        else:
            self.dropped[(queue, kind)] += 1

    def send_message(self, peer: Peer, kind: str, message: Any) -> bool:
        payload = cbor(message)
        if payload is None:
            return False
        return self.send(peer, kind, [payload])

    def harmful(self, queue: str, frame: bytes, kind: str) -> bool:
        """Whether *frame* reads as a message withhold() keeps back. Read as cbor2 reads it,
        junk after a whole message ignored: the master has been seen to take "QUIT" followed
        by junk for QUIT."""
        try:
            message = cbor2.loads(frame[:4096])
        except Exception:  # not a message at all: harmless to send
            return False
        return self.withhold(queue, message, kind)

    def withhold(self, queue: str, message: Any, kind: str) -> bool:
        """Whether the master would obey *message* to the campaign's own harm: stop or pause
        itself, kill or put to sleep the real slave, or change the real slave's catalogue.
        Those are what an operator may ask; the rest of the control and import queues'
        language, valid or not, is sent."""
        if queue == "control":
            if message in ("QUIT", "PAUSE"):
                return True
            if isinstance(message, list) and len(message) == 2 and message[0] in ("KILL", "SLEEP"):
                target = message[1]
                return target is None or (isinstance(target, int) and target <= 10**6)
        if queue == "import" and isinstance(message, list) and message:
            if message[0] == "IMPORT" and kind == "import.clash":
                return False  # names a published file with other bytes: it must be refused
            if message[0] in ("REMOVE", "SKIP", "YANK", "RETRY", "ADD", "IMPORT"):
                at = 2 if message[0] == "IMPORT" else 1
                package, version = [*message[at : at + 2], None, None][:2]
                if isinstance(package, str) and canonicalize_name(package) in CATALOGUE_PROJECTS:
                    # the whole project (no version), or one of the catalogue's versions
                    return not isinstance(version, str) or (
                        (canonicalize_name(package), version) in CATALOGUE_VERSIONS
                    )
        return False

    # waiting

    def nap(self, seconds: float) -> Step:
        until = time.monotonic() + seconds
        while time.monotonic() < until and not self.stopping:
            yield

    def reply(self, peer: Peer, timeout: float) -> Answer:
        """Wait for the next message on *peer*; ``yield from`` gives it decoded, or None."""
        until = time.monotonic() + timeout
        while not peer.inbox:
            if time.monotonic() > until or self.stopping:
                return None
            yield None
        return decoded(peer.inbox.popleft()[-1])

    def request(self, peer: Peer, kind: str, message: Any, timeout: float = 15.0) -> Answer:
        peer.inbox.clear()
        if not self.send_message(peer, kind, message):
            return None
        return (yield from self.reply(peer, timeout))

    # running

    def rng(self, name: str) -> random.Random:
        # reproducible hostile data, never secrets or tokens
        return random.Random(f"{self.seed}:{name}")  # noqa: S311

    def event(self, text: str) -> None:
        self.events.append((time.monotonic(), text))

    def run(
        self,
        scenarios: list[tuple[float, Callable[[], Step]]],
        until: float,
        stop_when: Callable[[], bool],
    ) -> None:
        """Run *scenarios* (each started at its offset in seconds) until *until*, until every
        queue's budget is spent, or until *stop_when* says so (the master died, say)."""
        pending = sorted(scenarios, key=lambda s: s[0])
        active: list[Step] = []
        order = self.rng("scheduler")
        begun = time.monotonic()
        checked = 0.0
        while True:
            now = time.monotonic()
            if now >= until or (not pending and all(map(self.exhausted, QUEUES))):
                break
            if now - checked > 0.5:
                checked = now
                if stop_when():
                    break
            while pending and now - begun >= pending[0][0]:
                active.append(pending.pop(0)[1]())
            self.progress = False
            # Each round in a new order: the first of a queue's scenarios takes its allowance.
            order.shuffle(active)
            for scenario in list(active):
                try:
                    next(scenario)
                except StopIteration:
                    active.remove(scenario)
            self.pump()
            if not self.progress:
                time.sleep(0.002)
        self.stopping = True
        for scenario in active:
            scenario.close()
        self.stopping = False

    def hang_up(self) -> None:
        """Close every peer's connection (scenarios started later open their own)."""
        for peer in list(self.peers.values()):
            self.close(peer)
        for stranger in set(self.strangers.values()):
            self.dismiss(stranger)

    def close_all(self) -> None:
        self.hang_up()
        self.context.destroy(linger=0)
