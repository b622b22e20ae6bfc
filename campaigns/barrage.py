"""The hostile campaign's machinery: sockets on the master's queues, budgets, and a scheduler.

Scenarios are generators run in turn on one thread (see :class:`Barrage`); :class:`Zmtp` is a
status-queue subscriber written by hand.
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

from campaigns.farm import QUEUES, Farm
from campaigns.messages import (
    CATALOGUE_PROJECTS,
    CATALOGUE_VERSIONS,
    action_of,
    cbor,
    decoded,
)


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

    # sockets

    def peer(self, queue: str, *, keep: bool = False, routing_id: bytes | None = None) -> Peer:
        kind = {"control": zmq.PUSH, "status": zmq.XSUB}.get(queue, zmq.DEALER)
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, routing_id)
        sock.connect(self.farm.addresses[queue])
        peer = Peer(queue, sock, envelope=kind == zmq.DEALER, keep=keep)
        if kind != zmq.PUSH:
            self.peers[sock] = peer
            self.poller.register(sock, zmq.POLLIN)
        return peer

    def close(self, peer: Peer) -> None:
        if peer.sock in self.peers:
            self.poller.unregister(peer.sock)
            del self.peers[peer.sock]
        peer.sock.close(linger=0)

    def pump(self) -> None:
        """Take in whatever the master sent us, counting it by action."""
        if not self.peers:
            return
        for sock, _ in self.poller.poll(0):
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

    def close_all(self) -> None:
        self.hang_up()
        self.context.destroy(linger=0)
