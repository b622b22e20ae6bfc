"""The original piwheels' dialect (protocols/original.py), each of its differences from the
spec's both ways: as the master decodes what an original slave sends, and as the master encodes
what an original slave reads. tests/master/test_original_fleet.py runs the real slave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cbor2
import pytest

from piwheels.message_codec import (
    ProtocolError,
    decode,
    decode_frames,
    encode,
    encode_frames,
)
from piwheels.protocols import NO_DATA, original, wire
from piwheels.protocols.original import OriginalBuild, OriginalFile, OriginalStats
from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.records.slaves import SlaveStats

MASTER = original.slave_driver
SLAVE = reversed(original.slave_driver)
NOW = datetime(2026, 12, 7, 6, 0, 0, 123456, tzinfo=UTC)
HELLO = [
    timedelta(hours=3),
    timedelta(minutes=5),
    "311",
    "cp311",
    "linux_x86_64",
    "pi4",
    "Debian GNU/Linux",
    "12",
    "",
    "",
]
STATS = [NOW, 100 << 30, 50 << 30, 4 << 30, 3 << 30, 1 << 30, 1 << 29, 0.5, 48.2]
LIB = "/usr/lib/x86_64-linux-gnu/libfoo.so.1"
FILE = [
    "foo-1.0-cp311-cp311-linux_x86_64.whl",
    1234,
    "a" * 64,
    "foo",
    "1.0",
    "cp311",
    "cp311",
    "linux_x86_64",
    ">=3.9",
    {"apt": ["libc6"], "pip": ["bar"], "": [LIB]},
    "/simple",
]


def original_wire(action: str, data: object = NO_DATA) -> bytes:
    """What the original's transport writes: ``[action, data]``, durations as tag 2001."""

    def default(encoder: cbor2.CBOREncoder, value: object) -> None:
        assert isinstance(value, timedelta)
        parts = [value.days, value.seconds, value.microseconds]
        encoder.encode(cbor2.CBORTag(2001, parts))

    message = action if data is NO_DATA else [action, data]
    return cbor2.dumps(message, default=default, datetime_as_timestamp=False)


# -- 1. framing: [action, [fields...]] ---------------------------------------------------------


def test_an_original_hello_is_nested_and_decodes_to_the_spec_hello() -> None:
    action, hello = decode(MASTER, original_wire("HELLO", HELLO))
    assert action == "HELLO"
    assert hello == wire.SLAVE_HELLO.check(HELLO, "HELLO")
    # the spec's dialect refuses it, and the original's refuses the spec's flat HELLO
    with pytest.raises(ProtocolError):
        decode(wire.slave_driver, original_wire("HELLO", HELLO))
    with pytest.raises(ProtocolError):
        decode(MASTER, encode(reversed(wire.slave_driver), "HELLO", hello))


def test_the_master_answers_an_original_slave_nested() -> None:
    assert cbor2.loads(encode(MASTER, "ACK", (3, "http://x/simple/"))) == [
        "ACK",
        [3, "http://x/simple/"],
    ]
    assert cbor2.loads(encode(MASTER, "BUILD", ("numpy", "1.14.0"))) == [
        "BUILD",
        ["numpy", "1.14.0"],
    ]
    assert cbor2.loads(encode(MASTER, "SEND", "foo.whl")) == ["SEND", "foo.whl"]
    assert cbor2.loads(encode(MASTER, "CONT")) == "CONT"
    # and an original slave reads each back (its protocol, reversed)
    assert decode(SLAVE, encode(MASTER, "BUILD", ("numpy", "1.14.0"))) == (
        "BUILD",
        ("numpy", "1.14.0"),
    )


# -- 2. durations: tag 2001 [days, seconds, microseconds] ---------------------------------------


def test_durations_travel_as_tag_2001_in_both_dialects() -> None:
    theirs = cbor2.loads(original_wire("HELLO", HELLO))[1][0]
    ours = encode(reversed(wire.slave_driver), "HELLO", wire.SLAVE_HELLO.check(HELLO, "HELLO"))
    for duration in (theirs, cbor2.loads(ours)[1]):
        assert (duration.tag, list(duration.value)) == (2001, [0, 10800, 0])


# -- 3. IDLE and BUSY report swap ------------------------------------------------------------


@pytest.mark.parametrize("action", ["IDLE", "BUSY"])
def test_nine_stats_with_swap_become_the_spec_stats_with_swap(action: str) -> None:
    got, stats = decode(MASTER, original_wire(action, STATS))
    assert (got, stats) == (action, OriginalStats(*STATS))
    standard = original.slave_dialect.received(action, stats)
    assert standard == SlaveStats(NOW, *STATS[1:5], 0.5, 48.2, 1 << 30, 1 << 29)
    # seven (the spec's) are refused from an original slave
    with pytest.raises(ProtocolError, match="expected 9 fields"):
        decode(MASTER, original_wire(action, STATS[:5] + STATS[7:]))


def test_our_slaves_may_add_swap_after_the_spec_stats() -> None:
    seven = SlaveStats(NOW, *STATS[1:5], 0.5, 48.2)
    assert decode(wire.slave_driver, encode(reversed(wire.slave_driver), "IDLE", seven)) == (
        "IDLE",
        seven,
    )
    nine = seven._replace(swap_total=1 << 30, swap_free=0)
    assert decode(wire.slave_driver, encode(reversed(wire.slave_driver), "IDLE", nine))[1] == nine


# -- 4. SLEEP carries whether the master is paused -------------------------------------------


def test_sleep_carries_paused_to_an_original_slave_and_nothing_to_ours() -> None:
    for paused in (True, False):
        data = original.slave_dialect.to_send("SLEEP", paused)
        assert cbor2.loads(encode(MASTER, "SLEEP", data)) == ["SLEEP", paused]
        assert decode(SLAVE, encode(MASTER, "SLEEP", data)) == ("SLEEP", paused)
        ours = wire.slave_dialect.to_send("SLEEP", paused)
        assert cbor2.loads(encode(wire.slave_driver, "SLEEP", ours)) == "SLEEP"
    # a bare SLEEP is what stops an original slave: the dialect never sends one
    with pytest.raises(ProtocolError, match="needs data"):
        encode(MASTER, "SLEEP")


# -- 5, 6. BUILT's files of 11 fields; the "" dependencies -------------------------------------


def test_an_original_built_becomes_the_spec_build_result() -> None:
    built = [True, timedelta(seconds=61, microseconds=5), "log", [FILE]]
    action, result = decode(MASTER, original_wire("BUILT", built))
    assert action == "BUILT"
    assert isinstance(result, OriginalBuild)
    assert result.files[0] == OriginalFile(*FILE)
    standard = original.slave_dialect.received("BUILT", result)
    assert standard == BuildResult(
        True,
        timedelta(seconds=61, microseconds=5),
        "log",
        [
            FileState(
                *FILE[:8],  # type: ignore[arg-type]
                frozenset(
                    {
                        Dependency("apt", "libc6"),
                        Dependency("pip", "bar"),
                        Dependency("library", LIB),
                    }
                ),
                ">=3.9",
            )
        ],
        None,
    )


def test_a_failed_original_built_has_no_files() -> None:
    built = [False, timedelta(seconds=3), "error: no", []]
    _, result = decode(MASTER, original_wire("BUILT", built))
    assert original.slave_dialect.received("BUILT", result) == BuildResult(
        False, timedelta(seconds=3), "error: no", [], None
    )


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (8, 3, "requires_python"),
        (9, {"apt": "libc6"}, "dependencies"),
        (9, {"apt": [1]}, "dependencies"),
        (9, {1: ["x"]}, "map key must be a text string"),
        (10, None, "location"),
        (1, "12", "filesize"),
    ],
)
def test_an_original_file_of_the_wrong_shape_is_refused(
    field: int, value: object, error: str
) -> None:
    bad = [*FILE]
    bad[field] = value
    with pytest.raises(ProtocolError, match=error):
        decode(MASTER, original_wire("BUILT", [True, timedelta(1), "", [bad]]))
    with pytest.raises(ProtocolError, match="expected 11 fields"):
        decode(MASTER, original_wire("BUILT", [True, timedelta(1), "", [FILE[:10]]]))


# -- 7. the file queue: raw frames -------------------------------------------------------------


def test_the_file_queue_speaks_raw_frames_with_an_original_slave() -> None:
    juggler, sender = original.file_juggler, reversed(original.file_juggler)
    assert encode_frames(juggler, "FETCH", (1048576, 65536)) == [b"FETCH", b"1048576", b"65536"]
    assert encode_frames(juggler, "DONE") == [b"DONE"]
    assert decode_frames(sender, [b"FETCH", b"0", b"10"]) == ("FETCH", (0, 10))
    assert decode_frames(juggler, [b"HELLO", b"42"]) == ("HELLO", 42)
    action, chunk = decode_frames(juggler, [b"CHUNK", b"65536", memoryview(b"\x00\xff")])
    assert action == "CHUNK"
    assert chunk.offset == 65536
    assert bytes(chunk.data) == b"\x00\xff"
    assert encode_frames(sender, "CHUNK", (0, b"abc")) == [b"CHUNK", b"0", b"abc"]


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        ([b"HELLO"], "takes 1 fields"),
        ([b"HELLO", b"1", b"2"], "takes 1 fields"),
        ([b"HELLO", b"-1"], "expected an int"),
        ([b"HELLO", b"1" * 20], "expected an int"),
        ([b"HELLO", b" 1"], "expected an int"),
        ([b"CHUNK", b"x", b"data"], "expected an int"),
        ([b"FETCH", b"0", b"1"], "unknown message"),
        ([b"\xff" * 100], "unknown message"),
    ],
)
def test_bad_frames_are_refused(frames: list[bytes], error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        decode_frames(original.file_juggler, frames)


def test_only_ints_and_bytes_are_declared_as_frames() -> None:
    for protocol in (original.file_juggler, reversed(original.file_juggler)):
        for spec in (*protocol.recv.values(), *protocol.send.values()):
            fields = getattr(spec, "fields", () if spec is None else (spec,))
            assert {field.describe() for field in fields} <= {"int", "bytes"}
