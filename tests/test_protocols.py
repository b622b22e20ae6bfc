"""Every message of every protocol round-trips exactly, and bad data is refused at both ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import cbor2
import pytest

from piwheels import protocols
from piwheels.failures import Cause, Diagnosis, Want
from piwheels.message_codec import ProtocolError, decode, encode
from piwheels.protocols import NO_DATA, Failure, Protocol
from piwheels.records.builds import BuildOrigin, BuildResult, Dependency, FileState
from piwheels.records.hits import ClientRow, DailyHits, Download, Downloads, HitBatch, Popular
from piwheels.records.projects import Statistics
from piwheels.records.slaves import SlaveHello, SlaveStats

NOW = datetime(2026, 11, 22, 12, 34, 56, 789012, tzinfo=UTC)
FILE = FileState(
    "foo-1.0-cp311-cp311-linux_x86_64.whl",
    1234,
    "a" * 64,
    "foo",
    "1.0",
    "cp311",
    "cp311",
    "linux_x86_64",
    frozenset({Dependency("apt", "libc6"), Dependency("pip", "bar")}),
    ">=3.9",
)
HELLO = SlaveHello(
    timedelta(hours=3, microseconds=1),
    timedelta(minutes=5),
    "311",
    "cp311",
    "linux_x86_64",
    "slave1",
    "Debian GNU/Linux",
    "12 (bookworm)",
    "c03111",
    "100000001",
)
STATS = SlaveStats(NOW, 10 << 30, 5 << 30, 8 << 30, 4 << 30, 0.25, 47.5)
RESULT = BuildResult(True, timedelta(seconds=61, microseconds=5), "log\n" * 100, [FILE])
ORIGIN = BuildOrigin("SHA256:abc", "pi4", "Debian", "12", "311", "linux_armv7l")

HITS = HitBatch(
    "ab" * 32,
    0,
    4096,
    30,
    2,
    [ClientRow("pip", "24.0", "CPython", "3.11.2", "3.11.2", "Linux", "6.1", "", "", "armv7l")],
    [Download(NOW, "foo-1.0-py3-none-any.whl", "foo", 0)],
    [DailyHits("foo", "search", NOW.replace(hour=0, minute=0, second=0, microsecond=0), 3)],
)
SAMPLES: dict[str, Any] = {
    "HELLO": HELLO,
    "IDLE": STATS,
    "BUSY": STATS,
    "BUILT": RESULT,
    "ACK": (1, "https://x/simple/"),
    "BUILD": ("numpy", "1.14.0"),
    "SEND": FILE.filename,
    "CHUNK": (0, b"\x00\xff" * 10),
    "FETCH": (0, 65536),
    "IMPORT": (0, "foo", "1.0", None, True, timedelta(1), "log", [FILE]),
    "REMOVE": ("foo", "1.0", ""),
    "REBUILD": ("PROJECT", None),
    "ERROR": "no such package",
    "FAILED": ("Oracle 0", "Traceback..."),
    "SETSERIAL": 42,
    "SETPROJECTS": [("foo", "cp39 cp311", '{"package": "foo", "versions": []}')],
    "REMOVEPROJECT": "foo",
    "GETQUEUE": 100,
    "GETHASHES": [FILE.filename],
    "QUEUED": ("foo", "1.0", "cp311"),
    "RESUME": ("foo", "1.0"),
    "LOGBUILD": (1, "foo", "1.0", "cp311", RESULT, ORIGIN),
    "OPENCHECKS": 100,
    "CHECKED": (7, "SHA256:abc", True, {FILE.filename: "0" * 64}),
    "OK": {"anything": [1, 2]},
    "QUEUE": ({"cp311": [("foo", "1.0")]}, {"cp311": 1}, 12),
    "EXPECT": (1, "foo", FILE, b"\x00k3ys", "127.0.0.1", "K3Y"),
    "DISCARD": ("foo", ["foo-1.0-py3-none-any.whl"]),
    "VERIFY": 1,
    "FORGET": 1,
    "STALLED": 1,
    "SAVEPAGES": [("BOTH", "foo"), ("SEARCH", "")],
    "TAKEPAGES": ("BOTH", "foo"),
    "PUBLISHED": "foo",
    "BOTH": "foo",
    "ADD": ("foo", None, ""),
    "PKGEXISTS": "foo",
    "VEREXISTS": ("foo", "1.0"),
    "REMOVEVER": ("foo", "1.0", ""),
    "ADDBYHAND": ("foo", None, ""),
    "SETSKIP": ("foo", "1.0", "too big"),
    "SETYANKED": ("foo", "1.0", True),
    "SKIP": ("foo", "1.0", "breaks the builders"),
    "YANK": ("foo", "1.0", True),
    "RETRY": ("foo", "1.0", "cp311"),
    "PRIORITY": ("foo", None, True),
    "SETPRIORITY": ("foo", "1.0", False),
    "RETRYCAUSE": ("missing-header", "cp311"),
    "INSTALLED": ("libfoo-dev", None),
    "DEBINSTALLED": ("libfoo-dev", "cp311"),
    # PyPI's removals and statuses (migration 0018)
    "SETSTATUS": ("foo", 42, "quarantined", "malware"),
    "PYPIHOLD": timedelta(minutes=5),
    "PLACED": ([FILE.filename], True),
    "LOSTBUILD": (1, "foo", "1.0", "cp311", timedelta(seconds=30), "silent for 0:01:00"),
    "REQUEUEDUE": None,
    "WAKE": None,
    "KILL": 3,
    "MASTER": ("paused", NOW, "0.1.0"),
    "GONE": 3,
    "SLAVE": (
        3,
        "pi4",
        "cp311",
        "linux_armv7l",
        "building",
        ("numpy", "2.0"),
        NOW,
        NOW,
        NOW,
        STATS,
        False,
        "rack 3",
    ),
    "PROJECT": "foo",
    "LOGCURSOR": "ab" * 32,
    "CURSOR": "ab" * 32,
    "LOGHITS": HITS,
    "HITS": HITS,
    "RECOUNT": None,
    "HOME": Statistics(
        10,
        20,
        30,
        25,
        3,
        1,
        25,
        1 << 30,
        {"cp39": 5, "cp311": 0},
        {"cp39": 1, "cp311": 0},
        {"cp39": 3, "cp311": 0},
        {"cp39": {"missing-header": 3, "network": 1}},
        1 << 33,
        1 << 34,
        NOW,
        Downloads(120, 4000),
        [Popular("foo", 100), Popular("bar", 20)],
    ),
}
PROTOCOLS = [
    protocols.slave_driver,
    protocols.file_juggler,
    protocols.mr_chase,
    protocols.task_control,
    protocols.master_control,
    protocols.oracle,
    protocols.architect,
    protocols.file_juggler_control,
    protocols.web,
    protocols.master_commands,
    protocols.status,
    protocols.hit_counter,
]


def every_message() -> list[tuple[Protocol, str]]:
    return [
        (proto, action)
        for proto in PROTOCOLS
        for side in (proto, reversed(proto))
        for action in side.send
    ]


@pytest.mark.parametrize(
    ("protocol", "action"), every_message(), ids=lambda x: getattr(x, "name", x)
)
def test_every_message_round_trips(protocol: Protocol, action: str) -> None:
    sender = protocol if action in protocol.send else reversed(protocol)
    spec = sender.send[action]
    overrides = {
        ("file juggler", "HELLO"): 7,
        ("master commands", "SLEEP"): 2,
        ("status", "QUEUE"): {"cp39": 3},
        ("status", "STATS"): SAMPLES["HOME"],
        ("status", "BUILD"): (NOW, 3, "foo", "1.0", "cp39", True, timedelta(seconds=9)),
        ("status", "CHECK"): (NOW, 12, "foo", "1.0", "cp39", 4, "disagreed"),
        # the master's request queues: an ERROR is of a kind the protocol declares
        ("oracle", "ERROR"): Failure("not-found", "no such package"),
        ("file juggler control", "ERROR"): Failure("no-room", "the output disk is full"),
        ("hit counter", "ERROR"): Failure("stale", "log abab is not read to 0"),
        ("hit counter", "OK"): 4096,
        # withheld wheels (cross-checks): the database's build and version, the files to move
        ("oracle", "WITHHOLD"): 7,
        ("oracle", "RELEASE"): ("foo", "1.0"),
        ("mr chase", "RELEASE"): ("foo", "1.0"),
        ("file juggler control", "WITHHOLD"): ("foo", [FILE.filename]),
        ("file juggler control", "RELEASE"): ("foo", [FILE.filename]),
    }
    sample = overrides.get((protocol.name, action), SAMPLES.get(action))
    data = NO_DATA if spec is None else sample
    received_action, received = decode(reversed(sender), encode(sender, action, data))
    assert received_action == action
    if spec is not None:
        assert tuple(received) == tuple(data) if isinstance(data, tuple) else received == data


def test_wire_format_is_the_seeds() -> None:
    assert cbor2.loads(encode(protocols.slave_driver, "BUILD", ("numpy", "1.14.0"))) == [
        "BUILD",
        "numpy",
        "1.14.0",
    ]
    assert cbor2.loads(encode(protocols.slave_driver, "SLEEP")) == "SLEEP"


def test_times_round_trip_exactly() -> None:
    odd = timezone(timedelta(hours=5, minutes=30))
    stats = STATS._replace(timestamp=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=odd))
    _, back = decode(
        protocols.slave_driver, encode(reversed(protocols.slave_driver), "IDLE", stats)
    )
    assert back.timestamp == stats.timestamp and back.timestamp.utcoffset() == odd.utcoffset(None)
    for delta in (
        timedelta(0),
        timedelta(microseconds=1),
        timedelta(days=-1, seconds=5),
        timedelta(days=9999, microseconds=999999),
    ):
        result = RESULT._replace(duration=delta)
        _, back = decode(
            protocols.slave_driver, encode(reversed(protocols.slave_driver), "BUILT", result)
        )
        assert back.duration == delta


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"\xff\xfe", "not a CBOR message"),
        (cbor2.dumps(42), "not a message"),
        (cbor2.dumps([]), "not a message"),
        (cbor2.dumps(["REBOOT"]), "unknown message"),
        (cbor2.dumps("HELLO"), "needs data"),
        (cbor2.dumps(["BYE", 1]), "carries no data"),
        (cbor2.dumps(["IDLE", "x", 1, 2, 3, 4, 5.0, 6.0]), "IDLE.timestamp: expected datetime"),
        (cbor2.dumps(["IDLE", NOW.replace(tzinfo=None), 1, 2, 3, 4, 5.0, 6.0], timezone=UTC), None),
        (cbor2.dumps(["IDLE", NOW, True, 2, 3, 4, 5.0, 6.0]), "IDLE.disk_total: expected int"),
        (cbor2.dumps(["BUILT", True, 5, "log", []]), "BUILT.duration: expected timedelta"),
        (cbor2.dumps(["BUILT", True, cbor2.CBORTag(2001, [0, "x", 0]), "", []]), "tag 2001"),
        (cbor2.dumps(["BUILT", True, cbor2.CBORTag(99999, 1), "", []]), "tag 99999"),
        (cbor2.dumps(["HELLO", *(["x"] * 10)]), "HELLO.build_timeout"),
        (cbor2.dumps(["HELLO", *(["x"] * 3)]), "expected 10 fields"),
        (cbor2.dumps(["SENT"]), "carries no data"),
    ],
)
def test_malformed_messages_are_refused(raw: bytes, error: str | None) -> None:
    if error is None:  # a naive datetime is sent as a plain UTC one by cbor2: accepted
        decode(protocols.slave_driver, raw)
        return
    with pytest.raises(ProtocolError, match=error):
        decode(protocols.slave_driver, raw)


def test_oversized_fields_are_refused() -> None:
    with pytest.raises(ProtocolError, match="longer than"):
        decode(reversed(protocols.slave_driver), cbor2.dumps(["BUILD", "x" * 5000, "1.0"]))


def test_refused_on_send_too() -> None:
    with pytest.raises(ProtocolError, match="may not send"):
        encode(protocols.slave_driver, "HELLO", HELLO)  # the master never sends HELLO
    with pytest.raises(ProtocolError, match="refusing to send"):
        encode(protocols.slave_driver, "BUILD", ("numpy", 1))
    with pytest.raises(ProtocolError, match="needs data"):
        encode(protocols.slave_driver, "SEND")


def test_a_refusal_says_where_in_the_message_the_bad_value_is() -> None:
    # locations are built only on the way out of a failed check; they must still be exact
    good = encode(reversed(protocols.slave_driver), "BUILT", RESULT._replace(files=[FILE, FILE]))
    message = cbor2.loads(good, tag_hook=lambda tag, _: tag)
    message[4][1][1] = "big"  # the second file's size
    raw = cbor2.dumps(message)
    with pytest.raises(
        ProtocolError, match=r"BUILT\.files\[1\]\.filesize: expected int, found 'big'"
    ):
        decode(protocols.slave_driver, raw)
    message[4][1][1] = FILE.filesize
    message[4][0][8] = [["dep", 7]]  # the first file's dependencies: (tool, name) pairs
    with pytest.raises(
        ProtocolError, match=r"BUILT\.files\[0\]\.dependencies\[0\]\.package: expected str"
    ):
        decode(protocols.slave_driver, cbor2.dumps(message))


def test_built_carries_a_diagnosis_and_the_original_four_fields_still_do() -> None:
    diagnosis = Diagnosis(
        Cause.MISSING_HEADER,
        'missing header portaudio.h: "fatal error: portaudio.h: No such file or directory"',
        (Want("header", "portaudio.h"),),
        ("portaudio19-dev",),
    )
    failed = BuildResult(False, timedelta(seconds=3), "log", [], diagnosis)
    raw = encode(reversed(protocols.slave_driver), "BUILT", failed)
    _, back = decode(protocols.slave_driver, raw)
    assert back.diagnosis.cause == "missing-header"
    assert tuple(back.diagnosis.wants) == diagnosis.wants
    assert tuple(back.diagnosis.needs) == ("portaudio19-dev",)
    # the original piwheels slave's BUILT: status, duration, output, files, and no more
    original = cbor2.dumps(["BUILT", False, cbor2.CBORTag(2001, [0, 3, 0]), "log", []])
    _, back = decode(protocols.slave_driver, original)
    assert back.diagnosis is None
    assert back.output == "log"
    # but not fewer, nor more
    duration = cbor2.CBORTag(2001, [0, 3, 0])
    for fields in (
        ["BUILT", False, duration, "log"],
        ["BUILT", False, duration, "log", [], None, 1],
    ):
        with pytest.raises(ProtocolError, match="4 to 5 fields"):
            decode(protocols.slave_driver, cbor2.dumps(fields))
