"""The hostile campaign's rogue slaves and importers: peers that speak the protocol and lie.

Rogue slaves take builds and answer them with hostile files, or walk away mid-build or
mid-transfer; the forger claims a published wheel with other bytes; the importer plays
piw-import gone bad. A catalogue version is never published by a rogue (see :func:`play`).

Rogue slaves work on the secure builder queues, with the hostile builders' trusted key (their
files go to the secure file queue with that key), and on the insecure ones, with no key. The
importer sends its files as piw-import does: on the secure file queue, with the master's key.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from packaging.utils import canonicalize_name

from campaigns.barrage import Answer, Barrage, Going, Peer, Step, Transfer, file_queue_of
from campaigns.farm import make_wheel
from campaigns.messages import (
    BIG,
    CATALOGUE,
    DECOY_PROJECT,
    DECOYS,
    HUGE,
    IDLE_ABI,
    MB,
    PUBLISHED_DECOYS,
    REAL_ABI,
    REAL_LABEL,
    ROGUE_ABI,
    built,
    dist,
    dur,
    hello,
    stats,
    wheel_row,
)
from piwheels.builder_keys import ClientKeys

RECORDED = (  # refused before any transfer: the build is recorded as failed and moves on
    "dotdot-name",
    "absurd-size",
    "bad-hash",
    "other-package",
    "long-name",
    "evil-dependency",
    "failed-with-file",
    "listed-twice",
    "tag-mismatch",
    "not-a-wheel",
    "huge-log",
)
# Never recorded as the build's own failure: the build goes back to the queue (a rogue that
# walks away mid-build has its build recorded as lost with it, a give-back after a delay).
REQUEUED = (
    "bad-bytes",
    "vanish-mid-transfer",
    "bye-mid-build",
    "hello-mid-build",
    "sent-early",
    "vanish",
)
DECOY_ONLY = ("honest-py3", "honest-cp39", "not-a-zip", "success-no-files")


# rogue slaves


def rogue(b: Barrage, number: int, queue: str = "slave", *, hostile: bool = True) -> Step:
    """A slave of the farm's first ABI on *queue* that answers every build with something
    hostile (or, in the drain, honestly: a catalogue build fails, a decoy is published)."""
    rng = b.rng(f"rogue-{number}")
    label = f"rogue-{number}" if hostile else "campaign-closer"
    kind = "rogue" if hostile else "drain"
    while not b.stopping:
        peer = b.peer(queue, keep=True)
        answer = yield from b.request(peer, f"{kind}.hello", hello(ROGUE_ABI, label))
        if not answer or answer[0] != "ACK":
            b.close(peer)
            yield from b.nap(1.0)
            continue
        b.rogue_ids.append(answer[1])
        yield from rogue_builds(b, peer, answer[1], rng, hostile=hostile)
        b.close(peer)


def rogue_builds(
    b: Barrage, peer: Peer, slave_id: int, rng: random.Random, *, hostile: bool
) -> Step:
    kind = "rogue" if hostile else "drain"
    while not b.stopping:
        answer = yield from b.request(peer, f"{kind}.idle", ["IDLE", *stats()])
        if not answer:
            return
        if answer[0] == "SLEEP":
            yield from b.nap(0.3)
            continue
        if answer[0] != "BUILD" or len(answer) != 3:
            return
        package, version = answer[1], answer[2]
        decoy = canonicalize_name(package) == DECOY_PROJECT and version in DECOYS
        if not hostile:
            variant = "honest-py3" if decoy else "honest-failure"
        elif version == PUBLISHED_DECOYS[0] and decoy:
            variant = "honest-cp39"  # for the forger to claim on cp311 with other bytes
        elif version in PUBLISHED_DECOYS and decoy:
            variant = rng.choice(DECOY_ONLY)
        else:  # a catalogue version is better recorded soon: the real slave waits for it
            share = 0.5 if decoy else 0.75
            variant = rng.choice(RECORDED if rng.random() < share else REQUEUED)
        b.notes[f"rogue {variant}"] += 1
        going_on = yield from play(b, peer, slave_id, package, version, variant, rng, kind)
        if decoy and hostile and version not in PUBLISHED_DECOYS:
            yield from operator_retry(b, version)
        if not going_on:
            return


def operator_retry(b: Barrage, version: str) -> Step:
    """Ask, as an operator would, for a decoy's failures to be forgotten: it is queued on
    the rogues' ABI again (see DECOYS)."""
    peer = b.peer("import", keep=True)
    message = ["RETRY", DECOY_PROJECT, version, ROGUE_ABI]
    answer = yield from b.request(peer, "rogue.retry", message, 10)
    b.notes[f"operator RETRY answered {answer[0] if answer else 'nothing'}"] += 1
    b.close(peer)


def play(
    b: Barrage,
    peer: Peer,
    slave_id: int,
    package: str,
    version: str,
    variant: str,
    rng: random.Random,
    kind: str,
) -> Going:
    """Answer one BUILD as *variant*; whether the conversation can go on.

    Whatever the variant, a SEND is answered: with damaged bytes unless the variant is
    one that publishes (a decoy's), so a catalogue version is never published by a rogue
    unless the master takes damaged bytes for good ones."""
    name = f"{kind}.{variant}" if kind == "rogue" else kind
    if variant in ("bye-mid-build", "hello-mid-build", "sent-early", "vanish"):
        return (yield from walk_away(b, peer, variant, name))
    corrupt, stop = True, None
    if variant in RECORDED or variant == "honest-failure":
        message = refused_build(variant, package, version, rng)
        content = rng.randbytes(1234)  # the size the rows above report
    elif variant == "success-no-files":
        message, content = built(True, []), b""
    else:
        content, filename = content_for(b, variant, package, version, rng)
        row = wheel_row(filename, len(content), hashlib.sha256(content).hexdigest())
        if variant == "vanish-mid-transfer":
            row[1] = 256 * MB  # room is reserved for it; two chunks come, then nothing
            stop = 2
        message = built(True, [row])
        corrupt = variant in ("bad-bytes", "vanish-mid-transfer")
    answer = yield from b.request(peer, name, message)
    files = file_queue_of(peer.queue)
    for _ in range(5):  # the master asks again for a file that arrived damaged
        if not answer or answer[0] != "SEND":
            break
        outcome = yield from transfer(
            b, slave_id, content, name, corrupt=corrupt, stop=stop, queue=files
        )
        if outcome is None:
            b.notes[f"{variant}: walked away mid-transfer"] += 1
            return False
        answer = yield from b.request(peer, name, "SENT")
    b.notes[f"{variant} answered {answer[0] if answer else 'nothing'}"] += 1
    return bool(answer and answer[0] == "DONE")


def walk_away(b: Barrage, peer: Peer, variant: str, name: str) -> Going:
    if variant == "vanish":
        return False  # the socket is closed; the master waits for the slave timeout
    if variant == "sent-early":
        yield from b.request(peer, name, "SENT", 2)
        return False
    for _ in range(2):
        answer = yield from b.request(peer, name, ["BUSY", *stats()])
        if not answer or answer[0] != "CONT":
            return False
    if variant == "bye-mid-build":
        b.send_message(peer, name, "BYE")
        return False
    answer = yield from b.request(peer, name, hello(ROGUE_ABI, "rogue-again"))
    return bool(answer and answer[0] == "ACK")


def refused_build(variant: str, package: str, version: str, rng: random.Random) -> list[Any]:
    """A BUILT whose files the master must refuse (so it records a failure)."""
    d = dist(package)
    good = f"{d}-{version}-py3-none-any.whl"
    sha = hashlib.sha256(rng.randbytes(8)).hexdigest()
    rows: list[list[Any]]
    if variant == "honest-failure":
        return built(False, [], "campaign: this build failed, honestly")
    if variant == "dotdot-name":
        name = rng.choice(
            [
                "../../../evil-1.0-py3-none-any.whl",
                f"{good}/../../../evil-1.0-py3-none-any.whl",
                "/tmp/evil-1.0-py3-none-any.whl",  # noqa: S108 - a name, never a file
                "..\\..\\evil-1.0-py3-none-any.whl",
                f".{good}",
                "..",
                f"{good}\x00.txt",
                "../index.html",
                "../../index.html",
            ]
        )
        rows = [wheel_row(name, 1234, sha)]
    elif variant == "absurd-size":
        size = rng.choice([2**62, 0, -5, HUGE, BIG, (4 << 30) + 1, 2**63 - 1, 1.5, "12"])
        rows = [wheel_row(good, size, sha)]
    elif variant == "bad-hash":
        bad = rng.choice(["A" * 64, "a" * 63, "a" * 65, "g" * 64, "", "0" * 64 + "\n", None])
        rows = [wheel_row(good, 1234, bad)]
    elif variant == "other-package":
        other = rng.choice(
            [
                "piwtest_cext-1.0-cp39-cp39-linux_x86_64.whl",
                "numpy-1.0-py3-none-any.whl",
                f"{d}-9.9-py3-none-any.whl",
                f"{d}-1.0-py3-none-any.tar.gz",
            ]
        )
        rows = [wheel_row(other, 1234, sha)]
    elif variant == "long-name":
        long_name = f"{d}-{version}-py3" + "x" * (1000 - len(good)) + "-none-any.whl"
        tags = f"{d}-{version}-" + ".".join(["py3"] * 240) + "-none-any.whl"
        rows = [wheel_row(rng.choice([long_name, tags[:1000]]), 1234, sha)]
    elif variant == "evil-dependency":
        deps = rng.choice(
            [
                [["evil", "piwtest-cext"]],
                [["pip", ""]],
                [["apt", "x" * 300]],
                [["pip", f"dep{i}"] for i in range(1001)],
            ]
        )
        rows = [wheel_row(good, 1234, sha, deps=deps)]
    elif variant == "failed-with-file":
        return built(False, [wheel_row(good, 1234, sha)])
    elif variant == "listed-twice":
        rows = [wheel_row(good, 1234, sha), wheel_row(good, 99, "b" * 64)]
    elif variant == "tag-mismatch":
        rows = [wheel_row(good, 1234, sha, tags=("cp311", "cp311", "linux_x86_64"))]
    elif variant == "not-a-wheel":
        rows = [wheel_row(rng.choice(["setup.py", "index.html", f"{d}.egg"]), 12, sha)]
    else:  # huge-log: a failure whose log is 12 MB
        return built(False, [], "campaign log line\n" * (12 * MB // 18))
    return built(True, rows)


def content_for(
    b: Barrage, variant: str, package: str, version: str, rng: random.Random
) -> tuple[bytes, str]:
    """The bytes a rogue offers, and the name it offers them under."""
    d = dist(package)
    if variant in ("honest-py3", "honest-cp39"):
        tag = "py3-none-any" if variant == "honest-py3" else "cp39-cp39-linux_x86_64"
        key = (f"{package}=={version}", tag)
        if key not in b.wheels:
            made = make_wheel(package, version, b.farm.work / "forged", tag=tag)
            b.wheels[key] = made.read_bytes()
        return b.wheels[key], f"{d}-{version}-{tag}.whl"
    # not-a-zip, bad-bytes, vanish-mid-transfer: the name is right, the content is not
    return rng.randbytes(rng.choice((100, 3000, 2 * MB + 17))), f"{d}-{version}-py3-none-any.whl"


def transfer(
    b: Barrage,
    slave_id: Any,
    content: bytes,
    kind: str,
    *,
    corrupt: bool,
    stop: int | None,
    queue: str = "file",
    keys: ClientKeys | None = None,
) -> Transfer:
    """Serve the File Juggler's FETCHes for *content* as *slave_id*, on the file *queue*
    (with *keys*, else the hostile builders'); None if it went silent (or we walked away),
    else True when it said DONE."""
    peer = b.peer(queue, keep=True, keys=keys)
    try:
        b.send_message(peer, kind, ["HELLO", slave_id])
        chunks = 0
        while not b.stopping:
            message = yield from b.reply(peer, 15)
            if not message:
                return None
            if message[0] == "DONE":
                return True
            if message[0] != "FETCH" or len(message) != 3:
                continue
            offset, length = int(message[1]), int(message[2])
            chunk = content[offset : offset + length]
            if corrupt and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            chunks += 1
            if stop is not None and chunks > stop:
                return None
            b.send_message(peer, kind, ["CHUNK", offset, chunk])
        return None
    finally:
        b.close(peer)


def forger(b: Barrage, queue: str = "slave") -> Step:
    """A slave of the real slave's ABI on *queue* that claims a published name with other
    bytes.

    It waits for a decoy that a rogue published as a cp39-specific wheel (so the version
    moved on to cp311), takes that build if it can, and reports the cp39 wheel's name with
    different bytes. Any other build it is handed goes straight back (BYE), which the master
    records as a build lost with its slave, given back only 10 minutes later: so it waits too
    until the real slave has recorded the whole catalogue, whose builds it would take away."""
    rng = b.rng("forger")
    sql = """
        SELECT f.filename, v.package, v.version FROM files f
        JOIN builds b USING (build_id) JOIN versions v USING (version_id)
        JOIN build_queue q ON q.version_id = v.version_id
        WHERE q.abi_tag = %s AND f.abi_tag = %s AND v.package = %s
    """
    target, found = None, []
    while not b.stopping:
        found = b.farm.query(sql, REAL_ABI, ROGUE_ABI, DECOY_PROJECT)
        if found and real_slave_done(b):
            target = found[0]
            break
        yield from b.nap(1.0)
    if target is None:
        why = "no published cp39 decoy" if not found else "the catalogue still building"
        b.notes[f"forger: never started ({why})"] += 1
        return
    filename, package, version = target
    for _ in range(20):
        peer = b.peer(queue, keep=True)
        answer = yield from b.request(peer, "rogue.forger", hello(REAL_ABI, "forger"))
        for _ in range(200):
            if not answer or answer[0] == "BUILD":
                break
            yield from b.nap(0.05)
            answer = yield from b.request(peer, "rogue.forger", ["IDLE", *stats()])
        if answer and answer[0] == "BUILD" and (answer[1], answer[2]) == (package, version):
            forged = rng.randbytes(500)
            row = wheel_row(filename, len(forged), hashlib.sha256(forged).hexdigest())
            answer = yield from b.request(peer, "rogue.forger", built(True, [row]))
            b.notes[f"forger answered {answer[0] if answer else 'nothing'}"] += 1
            b.send_message(peer, "rogue.forger", "BYE")
            b.close(peer)
            return
        b.send_message(peer, "rogue.forger", "BYE")  # not ours: give it back
        b.close(peer)
    b.notes["forger: never handed its decoy"] += 1


def real_slave_done(b: Barrage) -> bool:
    """Whether the real slave has recorded every catalogue version on its ABI."""
    ids = sorted(b.farm.ids[REAL_LABEL])
    if not ids:
        return False
    recorded = b.farm.query(
        "SELECT v.package, v.version FROM builds b JOIN versions v USING (version_id) "
        "WHERE b.abi_tag = %s AND b.built_by = ANY(%s)",
        REAL_ABI,
        ids,
    )
    return set(CATALOGUE) <= set(recorded)


# the import queue


def importer(b: Barrage) -> Step:
    """piw-import gone bad: hostile files, clashes with published files, damaged
    transfers, SENT out of nowhere."""
    rng = b.rng("importer")
    while not b.exhausted("import"):
        yield from b.turn("import")
        peer = b.peer("import", keep=True)
        game = rng.randrange(6)
        decoy = rng.choice(DECOYS)
        if game == 0:
            variant = rng.choice(RECORDED[:-1])
            files = refused_build(variant, DECOY_PROJECT, decoy, rng)[4]
            message = ["IMPORT", 0, DECOY_PROJECT, decoy, None, True, dur(1), "", files]
            yield from import_files(b, peer, f"import.{variant}", message, rng.randbytes(1234))
        elif game == 1:
            yield from clash(b, peer, rng)
        elif game == 2:
            yield from damaged_import(b, peer, decoy, rng)
        elif game == 3:
            yield from ask(b, peer, "import.sent-alone", "SENT")
        elif game == 4:
            message = ["IMPORT", 0, DECOY_PROJECT, "77.0", IDLE_ABI, True, dur(1), "", []]
            yield from ask(b, peer, "import.no-such-version", message)
        else:
            message = ["RETRY", DECOY_PROJECT, decoy, rng.choice([None, "cp27", "x" * 100])]
            yield from ask(b, peer, "import.retry", message)
        b.close(peer)
        yield


def ask(b: Barrage, peer: Peer, kind: str, message: Any) -> Answer:
    answer = yield from b.request(peer, kind, message, 20)
    b.notes[f"{kind} answered {answer[0] if answer else 'nothing'}"] += 1
    return answer


def clash(b: Barrage, peer: Peer, rng: random.Random) -> Step:
    published = b.farm.query(
        "SELECT f.filename, v.package, v.version FROM files f "
        "JOIN builds b USING (build_id) JOIN versions v USING (version_id)"
    )
    if not published:
        return
    filename, package, version = rng.choice(published)
    other = rng.randbytes(321)
    row = wheel_row(filename, len(other), hashlib.sha256(other).hexdigest())
    message = ["IMPORT", 0, package, version, None, True, dur(1), "", [row]]
    yield from import_files(b, peer, "import.clash", message, other)


def damaged_import(b: Barrage, peer: Peer, version: str, rng: random.Random) -> Step:
    content = rng.randbytes(5000)
    name = f"{dist(DECOY_PROJECT)}-{version}-cp311-cp311-linux_x86_64.whl"
    row = wheel_row(name, len(content), hashlib.sha256(content).hexdigest())
    message = ["IMPORT", 0, DECOY_PROJECT, version, None, True, dur(1), "", [row]]
    yield from import_files(b, peer, "import.bad-bytes", message, content)


def import_files(b: Barrage, peer: Peer, kind: str, message: Any, content: bytes) -> Step:
    """IMPORT, then answer every SEND with damaged bytes (an import left waiting for its
    files would hold up every other import for minutes), with the master's own key, as
    piw-import (run as the master's user) sends them."""
    master = b.farm.master_key()
    answer = yield from ask(b, peer, kind, message)
    for _ in range(5):
        if not answer or answer[0] != "SEND":
            return
        keys = ClientKeys(master, master.public)
        yield from transfer(b, 0, content, kind, corrupt=True, stop=None, keys=keys)
        answer = yield from ask(b, peer, kind, "SENT")


# the control and status queues
