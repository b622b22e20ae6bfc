"""What the hostile campaign says to the master: valid messages, their mutants and garbage.

Every generator here takes a seeded ``random.Random``, so a seed always makes the same messages.
The names below (ABIs, labels, decoy versions) are the hostile farm's, shared by its scenarios
and by the checks that keep back what would harm the campaign itself.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import cbor2
from packaging.utils import canonicalize_name

from campaigns.farm import DEFAULT_CATALOGUE

# -- the hostile farm's names -------------------------------------------------------------------

ROGUE_ABI = "cp39"  # every version is queued on the lowest ABI first: the rogues get it first
REAL_ABI = "cp311"  # the real slave's; a version reaches it once the rogues failed it on cp39
FARM_ABIS = (ROGUE_ABI, REAL_ABI)
IDLE_ABI = "cp27"  # not one of the farm's: a slave saying it is told to SLEEP, never to build
REAL_LABEL = "campaign-real"
# Versions of a test project that only the rogues are meant to play with, where a catalogue
# version must only ever be built by the real slave. Rogues publish forged wheels of the first
# two (0.1 as a cp39-specific wheel, for the forger); the rest they only ever get refused, and
# ask (as an operator would, with RETRY) to have queued again, so they never run out of builds.
# The master hands out no build again within 2 minutes of recording it: hence so many.
DECOY_PROJECT = "piwtest-pure"
DECOYS = tuple(f"0.{n}" for n in range(1, 41))
PUBLISHED_DECOYS = DECOYS[:2]
CATALOGUE = tuple((p, v) for p, v, yanked in DEFAULT_CATALOGUE if yanked is None)
CATALOGUE_VERSIONS = frozenset((canonicalize_name(p), v) for p, v, _ in DEFAULT_CATALOGUE)
CATALOGUE_PROJECTS = frozenset(p for p, _ in CATALOGUE_VERSIONS)

QUEUES = ("slave", "file", "import", "control", "status")
SLAVE_FRAME = 32 * 1024 * 1024  # the largest frame the Slave Driver takes (MAX_SLAVE_MESSAGE)
FILE_FRAME = 1 << 20  # a File Juggler chunk; the file queue refuses frames much larger
BIG = 10**4999 + 12345  # 5000 decimal digits: past the 4300 digits Python will str()
HUGE = 2**1100
MB = 1024 * 1024
FORGED_LINE = "2020-01-01 00:00:00,000 MainThread    CRITICAL forged by a peer"

# -- CBOR, as the wire carries it -------------------------------------------------------------


def dur(seconds: float) -> cbor2.CBORTag:
    """A duration as the transport sends one: tag 2001, [days, seconds, microseconds]."""
    whole, micros = divmod(round(seconds * 1_000_000), 1_000_000)
    days, whole = divmod(whole, 86_400)
    return cbor2.CBORTag(2001, [days, whole, micros])


def cbor(message: Any) -> bytes | None:
    """*message* in CBOR, or None for a value CBOR cannot hold (skipped, never sent)."""
    try:
        return cbor2.dumps(message, datetime_as_timestamp=False)
    except (cbor2.CBOREncodeError, TypeError, ValueError, OverflowError):
        return None


def action_of(payload: bytes) -> str:
    """The action of a message the master sent us ("?" if it is not one)."""
    try:
        message = cbor2.loads(payload)
    except Exception:  # whatever it is, it is counted as not a message
        return "?"
    if isinstance(message, str):
        return message
    if isinstance(message, list) and message and isinstance(message[0], str):
        return message[0]
    return "?"


def decoded(payload: bytes) -> list[Any] | None:
    """A reply from the master as ``[action, *fields]``, or None."""
    try:
        message = cbor2.loads(payload)
    except Exception:
        return None
    if isinstance(message, str):
        return [message]
    if isinstance(message, list) and message and isinstance(message[0], str):
        return message
    return None


def hello(abi: str, label: str) -> list[Any]:
    py = abi.removeprefix("cp")
    return ["HELLO", dur(3600), dur(300), py, abi, "linux_x86_64", label, "Campaign", "1", "", ""]


def stats(**changes: Any) -> list[Any]:
    """The fields of IDLE / BUSY: timestamp, disk total/free, memory total/free, load, temp."""
    fields = [datetime.now(UTC), 10 << 30, 5 << 30, 1 << 30, 1 << 29, 0.5, 40.0]
    for index, value in changes.items():
        fields[int(index.removeprefix("f"))] = value
    return fields


def wheel_row(
    filename: str,
    size: Any,
    sha: Any,
    *,
    deps: list[list[Any]] | None = None,
    tags: tuple[str, str, str] | None = None,
) -> list[Any]:
    """A FileState as BUILT / IMPORT carry it, its tags read off *filename* where they can be."""
    parts = filename.removesuffix(".whl").split("-")
    name, version = [*parts, "x", "x"][:2]
    py, abi, plat = tags or ((parts[-3], parts[-2], parts[-1]) if len(parts) >= 5 else ("py3",) * 3)
    return [filename, size, sha, name, version, py, abi, plat, deps or [], None]


def built(status: bool, files: list[list[Any]], output: str = "campaign build log") -> list[Any]:
    return ["BUILT", status, dur(5), output, files]


def palette() -> list[Any]:
    """Values put in place of a message's fields, one at a time."""
    return [
        None,
        True,
        False,
        0,
        -1,
        2**63,
        -(2**64) - 1,
        HUGE,
        BIG,
        1.5,
        float("nan"),
        float("inf"),
        "",
        "x" * 1025,
        "y" * 70_000,
        "\x00",
        # a whole log line, should the master log what it is sent as it is: see read_log()
        f"x\n{FORGED_LINE}",
        "../../../../etc/passwd",
        "piwtest_pure-1.0-py3-none-any.whl/../../x.whl",
        b"\x00bytes",
        [],
        [[]],
        [None, None, None],
        [HUGE] * 1000,  # loads of 2**1100
        {},
        {"k": "v"},
        {1: [2]},
        cbor2.CBORTag(2001, [HUGE, 0, 0]),
        cbor2.CBORTag(2001, [0, "x", 0]),
        cbor2.CBORTag(2001, "nonsense"),
        cbor2.CBORTag(2001, [0, 1, 10**18]),
        cbor2.CBORTag(1002, {1: 1}),  # RFC 9581's duration, whose int keys a peer may not send
        cbor2.CBORTag(0, "2020-01-01T00:00:00"),  # a timestamp without its timezone
        cbor2.CBORTag(0, "not a date"),
        cbor2.CBORTag(1, 2**70),
        cbor2.CBORTag(99999, 1),
        cbor2.CBORTag(2, b"\xff" * 300),
        cbor2.CBORTag(258, [1, 2, 2]),  # a set
        cbor2.CBORTag(29, 7),  # a reference to a shared value never shared
        cbor2.undefined,
        cbor2.CBORSimpleValue(99),
    ]


DROP = object()  # in place of a value: the field is removed altogether


def field_paths(message: Any) -> list[tuple[int, ...]]:
    """Where each field of *message* is, records inside it included (a bare action: ``()``)."""
    if not isinstance(message, list):
        return [()]
    paths: list[tuple[int, ...]] = []
    for index, item in enumerate(message):
        paths.append((index,))
        if isinstance(item, list) and len(item) < 50:
            paths.extend((index, *sub) for sub in field_paths(item) if sub)
    return paths


def replace_at(message: Any, path: tuple[int, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = list(message)
    if rest:
        copy[head] = replace_at(copy[head], rest, value)
    elif value is DROP:
        del copy[head]
    else:
        copy[head] = value
    return copy


def mutations(bases: list[Any]) -> Iterator[Any]:
    """Every base message with each of its fields replaced by each palette value, forever.

    Each pass walks every (message, field) pair once, with a value of its own, so that even a
    short campaign mutates every field of every message; later passes take the other values.
    """
    values = [*palette(), DROP]
    pairs = [(base, path) for base in bases for path in field_paths(base)]
    for round_ in itertools.count():
        for number, (base, path) in enumerate(pairs):
            yield replace_at(base, path, values[(round_ + number) % len(values)])
        for base in bases:  # and one field too many
            if isinstance(base, list):
                yield [*base, values[round_ % len(values)]]


FIXED_BAD_CBOR = [
    b"",
    b"\xff",  # a break with nothing to break
    b"\x1c",  # reserved additional information
    b"\x9f\x80\x80",  # an array never closed
    b"\x7b" + (2**62).to_bytes(8, "big"),  # a text string claiming 4 EiB
    b"\x9b" + (2**40).to_bytes(8, "big"),  # an array claiming a trillion items
    b"\x5a\xff\xff\xff\xff" + b"x",  # a byte string claiming 4 GiB
    b"\x81" * 100_000 + b"\x80",  # nesting 100,000 deep
    b"\x82\x65HEL\xffO\x01",  # an action that is not UTF-8
    b"\xd9\x03\xea\xa1\x01\x1b" + b"\xff" * 8,  # a duration of 2**64 seconds
    b"\xd8\x1d\x05",  # a shared reference never shared
    b"\xc2\x5a\x00\x01\x00\x00" + b"\xff" * 100,  # a bignum cut short
    b"\xf9\x7e\x00",  # a half-precision NaN alone
    b"\xbf\x61a",  # a map never closed
    b"\xa1\x80\x01",  # a map keyed by an array
]


def bad_cbor(rng: random.Random, valid: list[bytes]) -> bytes:
    how = rng.randrange(5)
    if how == 0:
        return rng.choice(FIXED_BAD_CBOR)
    good = rng.choice(valid)
    if how == 1:  # cut short
        return good[: rng.randrange(max(len(good), 1))]
    if how == 2:  # a few bits flipped
        flipped = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return bytes(flipped)
    if how == 3:  # something after the message
        return good + rng.randbytes(rng.randint(1, 16))
    return good[:1] + rng.randbytes(rng.randint(1, 64))  # a head, then noise


def random_bytes(rng: random.Random) -> bytes:
    size = rng.choice((0, 1, 2, 8, 64, 512, 4096, 65536))
    return rng.randbytes(rng.randint(0, size))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 9)
    simple: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.random() * 10 ** rng.randint(-5, 300),
        lambda: "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 40))),
        lambda: rng.randbytes(rng.randint(0, 40)),
        lambda: rng.choice(("HELLO", "IDLE", "BUILT", "IMPORT", "CHUNK", "SEND", "DONE")),
        lambda: datetime.now(UTC),
        lambda: dur(rng.random() * 1000),
    ]
    if kind < len(simple):
        return simple[kind]()
    if kind == 9:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    if kind == 10:
        return {str(i): random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}
    return cbor2.CBORTag(
        rng.choice((0, 1, 2, 3, 258, 1002, 2001, 55799)), random_value(rng, depth + 1)
    )


def wrong_shape(rng: random.Random, actions: list[str]) -> Any:
    """Well-formed CBOR that is not a message the queue takes, or not in the shape declared."""
    action = rng.choice(actions)
    how = rng.randrange(7)
    if how == 0:
        return random_value(rng)
    if how == 1:
        return [action, *(random_value(rng) for _ in range(rng.randint(0, 12)))]
    if how == 2:
        unknown = rng.choice(("", "hello", "QUIT ", "X" * 1000, "BUILT\x00", "\u0130DLE"))
        return [unknown, random_value(rng)]
    if how == 3:
        return {"action": action, "data": random_value(rng)}
    if how == 4:
        return [[action, random_value(rng)]]
    if how == 5:
        return [rng.randint(0, 10), action]
    return [action] if rng.random() < 0.5 else action


def dist(package: str) -> str:
    """A project's name as wheel file names spell it."""
    return canonicalize_name(package).replace("-", "_")
