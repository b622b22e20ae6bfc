"""The hostile campaign's strangers: peers on the secure builder queues that the master must not
admit, and must not be stopped or bloated by.

Kinds, each counted apart (see :meth:`Barrage.watch` for how a handshake's end is told):

* ``no-curve``: a ZeroMQ peer without CurveZMQ (an original slave, or anyone);
* ``unknown-key``: a CurveZMQ peer, the master's public key right, its own key trusted by no one;
* ``wrong-master-key``: the hostile builders' trusted key, told another master's public key (so
  it cannot prove who it is talking to, and the master cannot read it);
* ``flood``: a flood of handshakes, each from a new unknown key, one handshake each;
* ``raw.*``: TCP peers writing the handshake by hand: junk, a plain greeting, a CURVE HELLO
  whose box is noise, a command claiming 4 EiB, a ZMTP 1.0 greeting;
* ``silent``: TCP connections that never say a word (the master closes them after its
  handshake interval, or holds them);
* ``revoked``: a builder trusted, greeted, then revoked: its next messages, and its next
  handshakes, must get nothing.

Every stranger offers messages (a HELLO and garbage) that must never reach the master.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from urllib.parse import urlsplit

import zmq

from campaigns.barrage import Barrage, Peer, Step, Stranger
from campaigns.messages import IDLE_ABI, bad_cbor, cbor, hello, random_bytes, stats
from piwheels.builder_keys import ClientKeys

KINDS = ("no-curve", "unknown-key", "wrong-master-key")
RAW_KINDS = ("raw.junk", "raw.null-greeting", "raw.bad-hello", "raw.huge-command", "raw.zmtp1")
GREETING = 64  # a ZMTP 3 greeting's length
SILENT_HOLD = 45.0  # past libzmq's handshake interval (30 s), which the master leaves as it is


def hostile_frames(rng: random.Random) -> list[bytes]:
    """What a stranger offers: a HELLO, or garbage."""
    valid = cbor(hello(IDLE_ABI, "stranger")) or b"\x80"
    how = rng.randrange(3)
    if how == 0:
        return [valid]
    if how == 1:
        return [bad_cbor(rng, [valid])]
    return [random_bytes(rng)]


def keys_for(b: Barrage, kind: str) -> ClientKeys | None:
    if kind == "no-curve":
        return None
    if kind == "wrong-master-key":
        other, _ = zmq.curve_keypair()
        return ClientKeys(b.keys.pair, other)
    return b.unknown_keys()


def knockers(b: Barrage, queue: str, alive: int = 6) -> Step:
    """Strangers of every kind coming and going on the secure *queue*, *alive* at a time, each
    offering a few messages and held a few seconds (libzmq tries again every 100 ms, so each
    makes many handshakes)."""
    rng = b.rng(f"strangers:{queue}")
    held: list[tuple[float, Stranger]] = []
    try:
        while not b.stopping:
            now = time.monotonic()
            for until, stranger in [h for h in held if h[0] <= now]:
                b.dismiss(stranger)
                held.remove((until, stranger))
            if len(held) < alive:
                kind = rng.choice(KINDS)
                stranger = b.stranger(queue, kind, keys_for(b, kind))
                for _ in range(rng.randint(1, 4)):
                    b.offer(stranger, hostile_frames(rng))
                held.append((now + rng.uniform(2.0, 4.0), stranger))
            yield from b.nap(rng.uniform(0.2, 0.6))
    finally:
        for _, stranger in held:
            b.dismiss(stranger)


def flood_handshakes(b: Barrage, queue: str, count: int, hold: float = 15.0) -> Step:
    """*count* strangers at once on *queue*, each with a key of its own that no one trusted,
    each making one handshake (and offering a HELLO); held until every handshake is over, or
    *hold* seconds."""
    b.event(f"flood: {count} handshakes of unknown keys on the {queue} queue")
    started = time.monotonic()
    rng = b.rng(f"handshakes:{queue}")
    strangers = []
    try:
        for number in range(count):
            stranger = b.stranger(queue, "flood", b.unknown_keys(), retry=False)
            b.offer(stranger, hostile_frames(rng))
            strangers.append(stranger)
            if number % 100 == 99:
                yield
        until = time.monotonic() + hold
        while time.monotonic() < until and not b.stopping:
            b.pump()
            over = sum(
                b.handshakes[(queue, "flood", what)]
                for what in ("refused: ZAP 400", "refused: handshake failed", "admitted")
            )
            if over >= len(strangers):
                break
            yield
    finally:
        for stranger in strangers:
            b.dismiss(stranger)
        b.windows[f"flood.handshakes {queue}"] = (started, time.monotonic())
        b.event(f"flood: handshakes on the {queue} queue over")


# by hand, over TCP


def address_of(b: Barrage, queue: str) -> tuple[str, int]:
    parts = urlsplit(b.farm.addresses[queue])
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def greeting(mechanism: bytes, major: int = 3) -> bytes:
    """A ZMTP greeting: signature, version, mechanism, as-server (no), filler."""
    head = b"\xff" + bytes(8) + b"\x7f" + bytes([major, 0])
    return head + mechanism.ljust(20, b"\0") + bytes(32)


def raw_opening(kind: str, rng: random.Random) -> bytes:
    """What a raw stranger writes once connected."""
    if kind == "raw.junk":
        return rng.randbytes(rng.choice((1, 10, 64, 300, 4096)))
    if kind == "raw.null-greeting":  # a plain ZMTP 3.0 DEALER, by hand, and a message
        ready = b"\x05READY" + b"\x0bSocket-Type" + (6).to_bytes(4, "big") + b"DEALER"
        message = b"\x01\x00" + b"\x00" + bytes([len(body := cbor(["HELLO"]) or b"")]) + body
        return greeting(b"NULL") + b"\x04" + bytes([len(ready)]) + ready + message
    if kind == "raw.bad-hello":  # a HELLO command of the right size, its boxes noise
        body = b"\x05HELLO" + b"\x01\x00" + bytes(72) + rng.randbytes(32 + 8 + 80)
        return greeting(b"CURVE") + b"\x04" + bytes([len(body)]) + body
    if kind == "raw.huge-command":  # a command claiming 4 EiB, then a little of it
        return greeting(b"CURVE") + b"\x06" + (2**62).to_bytes(8, "big") + rng.randbytes(512)
    return b"\x01\x00" + rng.randbytes(rng.randint(0, 64))  # ZMTP 1.0: a length, a flag


def raw_read(conn: socket.socket) -> bytes | None:
    """What the master has sent so far (b"" once it closed); None if nothing yet."""
    try:
        return conn.recv(65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def raw_connect(b: Barrage, queue: str, kind: str) -> socket.socket | None:
    try:
        conn = socket.create_connection(address_of(b, queue), timeout=2)
    except OSError:
        b.handshakes[(queue, kind, "could not connect")] += 1
        return None
    conn.setblocking(False)
    b.handshakes[(queue, kind, "connections")] += 1
    return conn


def raw_knockers(b: Barrage, queue: str) -> Step:
    """TCP strangers writing a handshake by hand, one after another: what the master sends
    beyond its greeting is counted (an ERROR command, or a reply: must be none)."""
    rng = b.rng(f"raw:{queue}")
    while not b.stopping:
        kind = rng.choice(RAW_KINDS)
        conn = raw_connect(b, queue, kind)
        if conn is None:
            yield from b.nap(1.0)
            continue
        try:
            # the master may have closed it already: it took what it saw for junk
            with contextlib.suppress(OSError):
                conn.sendall(raw_opening(kind, rng))
            received, closed = b"", False
            until = time.monotonic() + 5
            while time.monotonic() < until and not b.stopping:
                data = raw_read(conn)
                if data == b"":
                    closed = True
                    break
                received += data or b""
                yield
            after = received[GREETING:] if received.startswith(b"\xff") else received
            key = (queue, kind)
            if after.startswith(b"\x04") and b"ERROR" in after[:16]:
                b.handshakes[(*key, "told ERROR")] += 1
            elif after and received.startswith(b"\xff"):
                b.handshakes[(*key, "replies")] += 1  # more than a greeting: must not be
            if closed:
                b.handshakes[(*key, "refused: closed by the master")] += 1
            else:
                b.handshakes[(*key, "still open after 5 s")] += 1
        finally:
            conn.close()
        yield from b.nap(rng.uniform(0.1, 0.5))


def silent(b: Barrage, queue: str, count: int) -> Step:
    """*count* TCP connections that never say a word; how long the master keeps them."""
    b.event(f"silent: {count} connections saying nothing on the {queue} queue")
    opened: list[tuple[float, socket.socket]] = []
    for _ in range(count):
        conn = raw_connect(b, queue, "silent")
        if conn is not None:
            opened.append((time.monotonic(), conn))
        yield
    until = time.monotonic() + SILENT_HOLD
    try:
        while opened and time.monotonic() < until and not b.stopping:
            for began, conn in list(opened):
                if raw_read(conn) == b"":
                    b.handshakes[(queue, "silent", "refused: closed by the master")] += 1
                    b.silent_closed_after.append(time.monotonic() - began)
                    opened.remove((began, conn))
                    conn.close()
            yield from b.nap(0.2)
    finally:
        for _, conn in opened:
            b.handshakes[(queue, "silent", f"still open after {SILENT_HOLD:.0f} s")] += 1
            conn.close()


# a key revoked, and the master's answers while it is flooded


def say(peer: Peer, message: object) -> None:
    """Send outside the queue's budget (these are measures, not the barrage)."""
    peer.sock.send_multipart([b"", cbor(message) or b""], zmq.NOBLOCK)


def revocations(b: Barrage, every: float = 8.0) -> Step:
    """A builder trusted, greeted (ACK), then revoked, as an operator would with piw-trust:
    its next messages on the same connection, and its next handshakes on both secure queues,
    must get nothing."""
    number = 0
    while not b.stopping:
        number += 1
        label = f"campaign-revoked-{number}"
        keys = b.farm.builder_keys(label)
        peer = b.peer("slave", keep=True, keys=keys)
        key = ("slave", "revoked")
        try:
            say(peer, hello(IDLE_ABI, label))
            answer = yield from b.reply(peer, 10.0)
            if not answer or answer[0] != "ACK":
                b.handshakes[(*key, "no ACK while trusted")] += 1
                b.farm.trusted.revoke(keys.pair.fingerprint)
                yield from b.nap(every)
                continue
            b.handshakes[(*key, "ACK while trusted")] += 1
            b.farm.trusted.revoke(keys.pair.fingerprint)
            peer.inbox.clear()
            for message in (["IDLE", *stats()], hello(IDLE_ABI, label), "BYE"):
                say(peer, message)
                b.handshakes[(*key, "messages after revocation")] += 1
            after = yield from b.reply(peer, 3.0)
            if after is not None or peer.inbox:
                b.handshakes[(*key, "replies")] += 1  # must be none
        finally:
            b.close(peer)
        for queue in ("slave", "file"):
            again = b.stranger(queue, "revoked", keys, retry=False)
            b.offer(again, [cbor(hello(IDLE_ABI, label)) or b""])
            yield from b.nap(2.0)
            b.dismiss(again)
        yield from b.nap(every)


def probe(b: Barrage, every: float = 2.0) -> Step:
    """A trusted builder's HELLO on a new connection (a new handshake) every *every* seconds:
    how long the master takes to ACK it, flood or no flood."""
    rng = b.rng("probe")
    while not b.stopping:
        peer = b.peer("slave", keep=True)
        began = time.monotonic()
        latency: float | None = None
        try:
            say(peer, hello(IDLE_ABI, "campaign-probe"))
            answer = yield from b.reply(peer, 10.0)
            if answer is not None and answer[0] == "ACK":
                latency = time.monotonic() - began
                say(peer, "BYE")
            elif answer is None and b.stopping:
                return
        finally:
            b.close(peer, linger=500)
        b.probes.append((began, latency))
        yield from b.nap(every * rng.uniform(0.8, 1.2))
