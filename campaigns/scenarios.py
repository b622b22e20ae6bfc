"""The hostile campaign's fuzzing scenarios: garbage, mutants, bad orders, identity games,
floods and big messages, on every queue the master opens to the outside (the builder queues
twice: the secure ones, by a builder with a trusted key, and the insecure ones, by anyone).

Each scenario is a generator over a :class:`~campaigns.barrage.Barrage`, which runs them in turn.
"""

from __future__ import annotations

import random
import time
from typing import Any

import cbor2
import zmq

from campaigns.barrage import (
    SECURE_QUEUES,
    Barrage,
    Peer,
    Step,
    Zmtp,
    file_queue_of,
    protocol_of,
)
from campaigns.messages import (
    BIG,
    FILE_FRAME,
    HUGE,
    IDLE_ABI,
    MB,
    REAL_LABEL,
    ROGUE_ABI,
    SLAVE_FRAME,
    bad_cbor,
    built,
    cbor,
    dur,
    hello,
    mutations,
    random_bytes,
    stats,
    wheel_row,
    wrong_shape,
)

# -- what is sent, queue by queue ---------------------------------------------------------------


def bases(queue: str) -> list[Any]:
    """One valid message of each kind the queue takes (the mutations' starting points): an
    insecure builder queue takes what its secure twin does."""
    row = wheel_row(
        "piwtest_pure-1.0-py3-none-any.whl", 1234, "a" * 64, deps=[["pip", "piwtest-cext"]]
    )
    nobody = "piwtest-nonesuch"  # never a catalogue project: see withhold()
    return {
        "slave": [
            hello(IDLE_ABI, "campaign-mutant"),
            ["IDLE", *stats()],
            ["BUSY", *stats()],
            built(True, [row]),
            "SENT",
            "BYE",
        ],
        "file": [["HELLO", 1], ["CHUNK", 0, b"chunk bytes"]],
        "import": [
            ["IMPORT", 0, nobody, "1.0", None, True, dur(5), "log", [row]],
            ["REMOVE", nobody, "1.0", "campaign"],
            ["REBUILD", "PROJECT", nobody],
            "SENT",
            ["ADD", nobody, "1.0", "campaign: never to be built"],
            ["SKIP", nobody, None, "campaign"],
            ["YANK", nobody, "1.0", True],
            ["RETRY", nobody, "1.0", None],
        ],
        "control": [
            "HELLO",
            "RESUME",
            "PAUSE",
            "QUIT",
            ["SLEEP", 10**7],
            ["WAKE", 10**7],
            ["KILL", 10**7],
        ],
    }.get(protocol_of(queue), [])


def actions(queue: str) -> list[str]:
    return [b if isinstance(b, str) else b[0] for b in bases(queue)] or ["HELLO"]


def bigints(queue: str) -> list[Any]:
    """Messages carrying a CBOR integer of 5000 digits, or loads of 2**1100."""
    row = wheel_row("piwtest_pure-1.0-py3-none-any.whl", BIG, "a" * 64)
    return {
        "slave": [
            ["HELLO", dur(1), cbor2.CBORTag(2001, [BIG, 0, 0]), *hello(IDLE_ABI, "big")[3:]],
            ["IDLE", *stats(f1=BIG, f2=HUGE, f3=HUGE, f4=HUGE)],
            ["IDLE", *stats(f5=HUGE, f6=BIG)],
            built(True, [row]),
            ["HELLO", *[HUGE] * 10],
            [BIG, [HUGE] * 5000],
        ],
        "file": [["HELLO", BIG], ["HELLO", HUGE], ["CHUNK", BIG, b"x"], ["CHUNK", -HUGE, b""]],
        "import": [
            ["IMPORT", BIG, "piwtest-nonesuch", "1.0", None, True, dur(1), "", []],
            ["IMPORT", 0, "piwtest-nonesuch", "1.0", None, True, dur(HUGE), "", [row]],
            ["YANK", "piwtest-nonesuch", "1.0", BIG],
        ],
        "control": [["SLEEP", BIG], ["WAKE", HUGE], ["KILL", BIG], ["KILL", HUGE]],
    }[protocol_of(queue)]


def fuzzer(b: Barrage, queue: str, kind: str) -> Step:
    """Send *kind* of message to *queue* at the budget's pace, from a pool of sockets."""
    rng = b.rng(f"{queue}:{kind}")
    pool = [b.peer(queue) for _ in range(8)]
    valid = [p for p in (cbor(m) for m in bases(queue)) if p is not None] or [b"\xa0"]
    mutants = mutations(bases(queue))
    bigs = bigints(queue) if queue != "status" else []
    while not b.exhausted(queue):
        yield from b.turn(queue)
        if b.exhausted(queue):
            return
        peer = rng.choice(pool)
        if kind == "random":
            frames = [random_bytes(rng) for _ in range(rng.choice((1, 1, 1, 2, 5)))]
            b.send(peer, kind, frames, raw=rng.random() < 0.2)
        elif kind == "bad-cbor":
            b.send(peer, kind, [bad_cbor(rng, valid)])
        elif kind == "shape":
            b.send_message(peer, kind, wrong_shape(rng, actions(queue)))
        elif kind == "bigint":
            b.send_message(peer, kind, rng.choice(bigs))
        elif kind == "mutate" and protocol_of(queue) == "slave":
            yield from greeted_mutant(b, queue, next(mutants), rng)
        elif kind == "mutate":
            b.send_message(peer, kind, next(mutants))
        yield


def greeted_mutant(b: Barrage, queue: str, message: Any, rng: random.Random) -> Step:
    """A mutated slave message, half of the time from a slave the master knows (of an
    ABI the farm does not build, so it is never handed a build), so that it reaches the
    Slave Driver's judgement of where that slave is in the protocol."""
    peer = b.peer(queue, keep=True)
    try:
        if rng.random() < 0.5:
            answer = yield from b.request(peer, "mutate", hello(IDLE_ABI, "mutant"), 5)
            if answer is None:
                return
        b.send_message(peer, "mutate", message)
        yield from b.nap(0.05)
    finally:
        b.close(peer, linger=2000)  # sent, even if its handshake is not over yet


def out_of_order(b: Barrage, queue: str) -> Step:
    """Slave conversations in the wrong order, and envelopes of the wrong shape."""
    rng = b.rng(f"order:{queue}")
    sequences: list[list[Any]] = [
        [["IDLE", *stats()]],
        [built(False, [])],
        ["SENT"],
        ["BYE", ["IDLE", *stats()]],
        ["HELLO", ["BUSY", *stats()]],
        ["HELLO", built(False, [])],
        ["HELLO", "SENT"],
        ["HELLO", ["IDLE", *stats()], ["IDLE", *stats()], ["BUSY", *stats()]],
        ["HELLO", "BYE", "BYE", ["IDLE", *stats()]],
        ["HELLO", ["IDLE", *stats()], built(True, [])],
    ]
    while not b.exhausted(queue):
        peer = b.peer(queue, keep=True)
        for message in rng.choice(sequences):
            yield from b.turn(queue)
            wanted = hello(IDLE_ABI, "out-of-order") if message == "HELLO" else message
            b.send_message(peer, "order", wanted)
            yield from b.nap(rng.choice((0, 0.01, 0.2)))
        if rng.random() < 0.3:  # no empty delimiter, or frames too many
            frames = [cbor(["IDLE", *stats()]) or b""]
            wrong = frames if rng.random() < 0.5 else [b"", b"", *frames]
            b.send(peer, "order", wrong, raw=True)
        yield from b.nap(0.3)
        b.close(peer)


def identity_games(b: Barrage, queue: str) -> Step:
    """A second HELLO on a connection; file-queue HELLOs naming other slaves' ids (the
    real slave's among them: on the secure file queue with another key, on the insecure one
    with none); two connections under one routing id."""
    rng = b.rng(f"identity:{queue}")
    files = file_queue_of(queue)
    while not b.exhausted(queue):
        game = rng.randrange(4)
        if game == 0:
            peer = b.peer(queue, keep=True)
            yield from b.request(peer, "identity", hello(ROGUE_ABI, "twice"), 5)
            yield from b.request(peer, "identity", hello(IDLE_ABI, "twice-again"), 5)
            b.send_message(peer, "identity", ["IDLE", *stats()])
            yield from b.nap(0.5)
            b.close(peer)
        elif game == 1:
            yield from impostor(b, files, rng)
        elif game == 2:
            shared = b"\x00" + rng.randbytes(4)
            peers = [b.peer(queue, keep=True, routing_id=shared) for _ in range(2)]
            for peer in peers:
                b.send_message(peer, "identity", hello(IDLE_ABI, "same-routing-id"))
            yield from b.nap(1.0)
            for peer in peers:
                b.close(peer)
        else:
            peer = b.peer(files, keep=True)
            for slave_id in (rng.randint(1, 50), rng.randint(1, 50)):
                b.send_message(peer, "identity", ["HELLO", slave_id])
            yield from b.nap(1.0)
            b.close(peer)
        yield from b.nap(rng.uniform(0.5, 2.0))


def impostor(b: Barrage, queue: str, rng: random.Random) -> Step:
    """Say HELLO on the file *queue* as someone else, and answer what is asked with junk."""
    targets: list[Any] = [0, -1, BIG, HUGE, *b.rogue_ids[-5:]]
    if b.farm.ids[REAL_LABEL] and rng.random() < 0.4:
        targets = sorted(b.farm.ids[REAL_LABEL])
    peer = b.peer(queue, keep=True)
    b.send_message(peer, "identity", ["HELLO", rng.choice(targets)])
    until = time.monotonic() + 3
    while time.monotonic() < until and not b.stopping:
        message = yield from b.reply(peer, until - time.monotonic())
        if message and message[0] == "FETCH" and len(message) == 3:
            b.notes["impostor was sent a FETCH"] += 1
            junk = ["CHUNK", message[1], rng.randbytes(min(int(message[2]), 4096))]
            b.send_message(peer, "identity", junk)
    b.close(peer)


# rogue slaves


# the control and status queues


def replays(b: Barrage) -> Step:
    """HELLO on the control queue makes the master replay its whole state to monitors."""
    peer = b.peer("control")
    while not b.exhausted("control"):
        yield from b.turn("control")
        b.send_message(peer, "control.hello-replay", "HELLO")
        yield from b.nap(0.2)


def monitors(b: Barrage) -> Step:
    """Subscribers that count what is published, and one that never reads (a stalled
    monitor: the publisher must drop, not hoard)."""
    peers = []
    for number in range(3):
        sock = b.context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(b.farm.addresses["status"])
        peer = Peer("status", sock, envelope=False, keep=False)
        if number < 2:
            b.peers[sock] = peer
            b.poller.register(sock, zmq.POLLIN)
        peers.append(peer)
    try:
        while not b.stopping:
            yield
    finally:
        for peer in peers:
            b.close(peer)


def subscriptions(b: Barrage) -> Step:
    """Subscription frames of every kind on the status queue, a 4 MB one first, each on a
    hand-written connection (see Zmtp) that now and then is dropped for a new one."""
    rng = b.rng("subscriptions")
    address = b.farm.addresses["status"]
    peer = zmtp(b, address)
    if peer is not None and b.sent_on["status"] < b.budget:
        b.count("status", "sub.4MB", peer.send(b"\x01" + rng.randbytes(4 * MB)))
    while not b.exhausted("status"):
        yield from b.turn("status")
        how = rng.randrange(5)
        if how == 0:
            frame = b"\x01" + rng.randbytes(rng.randint(0, 256))
        elif how == 1:
            frame = b"\x00" + rng.randbytes(rng.randint(0, 256))  # never subscribed
        elif how == 2:
            frame = random_bytes(rng)
        elif how == 3:
            frame = b"\x01" + (cbor(BIG) or b"")
        else:
            frame = b"\x01" + rng.randbytes(64 * 1024)
        if peer is None or not peer.alive or rng.random() < 0.01:
            if peer is not None:
                peer.close()
            peer = zmtp(b, address)
        if peer is not None:
            b.count("status", "sub.frames", peer.send(frame))
        yield
    if peer is not None:
        peer.close()


def zmtp(b: Barrage, address: str) -> Zmtp | None:
    try:
        return Zmtp(address)
    except OSError:
        b.dropped[("status", "connect")] += 1
        return None


# floods and big messages


def flood_connections(b: Barrage, queue: str, count: int) -> Step:
    """*count* connections at once, each saying one thing, held a while, then dropped."""
    b.event(f"flood: {count} connections on the {queue} queue")
    rng = b.rng(f"connections:{queue}")
    peers = []
    for number in range(count):
        if b.sent_on[queue] >= b.budget:
            break
        sock = b.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        if queue in SECURE_QUEUES:
            b.keys.secure(sock)
        sock.connect(b.farm.addresses[queue])
        peer = Peer(queue, sock, envelope=True, keep=False)
        peers.append(peer)
        b.send(peer, "flood.connections", [random_bytes(rng)])
        if number % 100 == 99:
            yield
    yield from b.nap(3.0)
    for peer in peers:
        peer.sock.close(linger=0)


def flood_hellos(b: Barrage, queue: str, count: int) -> Step:
    """*count* slaves saying HELLO together on *queue*, then never another word."""
    b.event(f"flood: {count} HELLOs on the {queue} queue")
    peers = []
    for number in range(count):
        if b.sent_on[queue] >= b.budget:
            break
        peer = b.peer(queue)
        peers.append(peer)
        message = hello(IDLE_ABI, f"flood-{number}")
        b.send_message(peer, "flood.hellos", message)
        if number % 100 == 99:
            yield
    yield from b.nap(8.0)  # the ACKs are counted meanwhile
    for peer in peers:
        b.close(peer)


def big_messages(b: Barrage, frames: int) -> Step:
    """8 MB of 8M empty arrays, and messages of many 32 MB frames, on each queue."""
    b.event("big: 8M empty arrays on every queue")
    arrays = b"\x9a" + (8_000_000).to_bytes(4, "big") + b"\x80" * 8_000_000
    hello_arrays = b"\x82\x65HELLO" + arrays  # the same, as the data of a HELLO
    for queue in ("slave", "insecure-slave", "file", "insecure-file", "import", "control"):
        peer = b.peer(queue)
        b.send(peer, "big.8M-arrays", [arrays])
        b.send(peer, "big.8M-arrays", [hello_arrays])
        yield from b.nap(1.0)
        b.close(peer)
    yield from b.nap(2.0)
    b.event(f"big: messages of {frames} x 32 MB frames")
    block = bytes(SLAVE_FRAME)
    for queue in ("slave", "insecure-slave", "import", "control"):
        peer = b.peer(queue)
        b.send(peer, "big.32MB-frames", [block] * frames)
        yield from b.nap(2.0)
        b.close(peer)
    # The File Juggler takes 1 MB chunks: many of them, and one frame far too big.
    for queue in ("file", "insecure-file"):
        peer = b.peer(queue)
        b.send(peer, "big.1MB-frames", [bytes(FILE_FRAME)] * (frames * 8))
        b.send(peer, "big.32MB-frames", [block])
        yield from b.nap(3.0)
        b.close(peer)
