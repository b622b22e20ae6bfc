"""Nothing a peer sends may stop, stall or bloat the master (issue #13): the decoders.

Generated hostile messages (see fuzz_messages.py); test_fuzz_handlers.py sends them to a
running master.

For every protocol from both ends: whatever arrives, ``decode`` and ``decode_frame`` return a
message or raise ProtocolError, nothing else, with a text short enough to log; and a few
hand-made messages each built to cost time or memory are refused.

Generation is derandomized and keeps no example database, so every run sends the same messages.
"""

from __future__ import annotations

import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from fuzz_messages import (
    NOW,
    PEER_FACING,
    PROTOCOLS,
    Raw,
    actions_of,
    colliding_keys,
    colliding_pair_keys,
    directions,
    dumps,
    hostile_messages,
    hostile_values,
    minimal_messages,
    path_name,
    paths,
    replace_at,
    valid_messages,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piwheels import protocols
from piwheels.message_codec import ProtocolError, decode, decode_frame, decode_frames
from piwheels.protocols import Protocol
from piwheels.records.slaves import SlaveStats

MAX_ERROR_TEXT = 2000  # a refusal is logged: it must not carry the peer's megabytes with it
# The hand-made costly messages must be refused well within this (pytest-timeout, not a
# benchmark: a decoder that refuses them up front takes milliseconds).
HOSTILE_TIMEOUT = 10

# -- the decoder layer ------------------------------------------------------------------------

DECODER = settings(
    max_examples=25,
    deadline=None,  # a timing assertion: these machines are shared and noisy
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
DIRECTIONS = directions()
EVERY_END = pytest.mark.parametrize(
    "protocol", [p for _, p in DIRECTIONS], ids=[name for name, _ in DIRECTIONS]
)
RECEIVING = [(name, p) for name, p in DIRECTIONS if p.recv]
EVERY_RECEIVING_END = pytest.mark.parametrize(
    "protocol", [p for _, p in RECEIVING], ids=[name for name, _ in RECEIVING]
)


def _decode_frame(protocol: Protocol, raw: bytes) -> tuple[str, Any]:
    return decode_frame(protocol, memoryview(raw))


def verdict(protocol: Protocol, raw: bytes) -> ProtocolError | None:
    """Run both decoders on *raw*: None if they accept it, else the refusal.

    Anything but a ProtocolError propagates (that is the bug this file looks for). The two
    must agree, since decode_frame is decode without the copy, and a refusal must be short.
    """
    refusals: list[ProtocolError | None] = []
    for decoder in (decode, _decode_frame):
        try:
            decoder(protocol, raw)
        except ProtocolError as exc:
            text = str(exc)
            assert len(text) < MAX_ERROR_TEXT, f"{decoder.__name__}: {len(text)} characters"
            refusals.append(exc)
        else:
            refusals.append(None)
    accepted = [refusal is None for refusal in refusals]
    assert accepted[0] == accepted[1], f"decode and decode_frame disagree: {refusals}"
    return refusals[0]


def refused(protocol: Protocol, raw: bytes) -> bool:
    return verdict(protocol, raw) is not None


def strict(protocol: Protocol) -> bool:
    """Whether *protocol* is spoken with peers outside the master, whose messages must be
    refused when out of bounds (internal ones may carry any value where declared so)."""
    names = {PROTOCOLS[name].name for name in PEER_FACING}
    return protocol.name.removesuffix(" (peer)") in names


@EVERY_END
@DECODER
@given(raw=st.binary(max_size=512))
def test_any_bytes_are_decoded_or_refused(protocol: Protocol, raw: bytes) -> None:
    """Not CBOR at all, or CBOR cut short: a peer's bytes need not be either."""
    verdict(protocol, raw)


@EVERY_END
@DECODER
@given(data=st.data())
def test_any_cbor_is_decoded_or_refused(protocol: Protocol, data: st.DataObject) -> None:
    """Well-formed CBOR that is no message, or a real action with anything after it."""
    message = data.draw(hostile_messages(protocol), label="message")
    junk = data.draw(st.sampled_from([b"", b"", b"", b"\x00", b"\xff\xff"]), label="junk after")
    verdict(protocol, dumps(message) + junk)


@EVERY_RECEIVING_END
@DECODER
@given(data=st.data())
def test_a_message_with_one_hostile_part_is_decoded_or_refused(
    protocol: Protocol, data: st.DataObject
) -> None:
    """A message that gets past the first checks, wrong only deep inside (a dependency's
    name in a BUILT's third file, a duration's seconds)."""
    message = data.draw(valid_messages(protocol), label="valid message")
    # else the generator (or the decoder) is wrong, and the mutations prove nothing
    assert verdict(protocol, dumps(message)) is None
    path = data.draw(st.sampled_from(paths(message)), label="path")
    value = data.draw(hostile_values, label="hostile value")
    verdict(protocol, dumps(replace_at(message, path, value)))


# Hand-made messages, each built to cost the decoder something.


@pytest.mark.timeout(HOSTILE_TIMEOUT)
def test_a_5000_digit_integer_is_refused() -> None:
    """Python has no str() for it: an error message quoting it raises ValueError instead."""
    raw = dumps(10**4999)
    assert all(refused(protocol, raw) for _, protocol in DIRECTIONS)


@pytest.mark.timeout(HOSTILE_TIMEOUT)
@pytest.mark.parametrize(
    "value", [10**4999, 2**1100, -(2**1100)], ids=["5000-digits", "2**1100", "-2**1100"]
)
def test_a_huge_integer_in_any_field_is_refused(value: int) -> None:
    """No field of a peer's message holds such an integer (a bigint column, a float, a
    string...); every part of every message of every protocol is tried."""
    problems = []
    for name, protocol in DIRECTIONS:
        for message in minimal_messages(protocol):
            for path in paths(message)[1:]:
                where = f"{name} {path_name(protocol, message, path)}"
                try:
                    accepted = verdict(protocol, dumps(replace_at(message, path, value))) is None
                except Exception as exc:
                    frame = traceback.extract_tb(exc.__traceback__)[-1]
                    problems.append(
                        f"{where}: {type(exc).__name__} in {Path(frame.filename).name}:"
                        f"{frame.name}: {str(exc)[:100]}"
                    )
                    continue
                if accepted and strict(protocol):
                    problems.append(f"{where}: accepted")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.timeout(HOSTILE_TIMEOUT)
@pytest.mark.parametrize("action", ["IDLE", "BUSY"])
@pytest.mark.parametrize("field", ["load_avg", "cpu_temp"])
def test_a_load_of_2_to_the_1100_is_refused(action: str, field: str) -> None:
    """A float field given an int float() cannot hold (OverflowError, not a ShapeError)."""
    stats = SlaveStats(NOW, 1, 1, 1, 1, 0.5, 40.0)._replace(**{field: 2**1100})
    assert refused(protocols.slave_driver, dumps([action, *stats]))


def empty_arrays(count: int, action: str | None = None) -> bytes:
    """``[[], [], ...]`` (one byte each), or ``[action, [], ...]``."""
    head = dumps(action) if action else b""
    items = count + (1 if action else 0)
    return b"\x9b" + items.to_bytes(8, "big") + head + b"\x80" * count


@pytest.mark.timeout(HOSTILE_TIMEOUT)
@pytest.mark.parametrize(
    ("name", "action"),
    [*((name, None) for name in PEER_FACING), ("slave_driver", "IDLE")],
    ids=[*PEER_FACING, "slave_driver-IDLE"],
)
def test_8mb_of_empty_arrays_is_refused_before_it_is_built(name: str, action: str | None) -> None:
    """8 million one-byte items would be 8 million Python lists (~600 MB): a peer's 8 MB must
    not cost the master that, so decoding them may not take more than 64 MB at its peak."""
    raw = empty_arrays(8_000_000, action)
    tracemalloc.start()
    try:
        assert refused(PROTOCOLS[name], raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"decoding took {peak >> 20} MB at its peak"


DEEP = 100_000
NESTINGS = {
    "arrays": b"\x81" * DEEP + b"\x00",
    "indefinite-arrays": b"\x9f" * DEEP + b"\xff" * DEEP,
    "maps": b"\xa1\x00" * DEEP + b"\x00",
    "tags": b"\xc6" * DEEP + b"\x00",
    "shareables": b"\xd8\x1c" * DEEP + b"\x80",
}


@pytest.mark.parametrize("name", PEER_FACING)
def test_a_small_map_of_colliding_keys_is_refused_as_it_is_read(name: str) -> None:
    """5,000 keys [a, b] of one hash in 70 kB: short enough that its items are not counted
    first, and 12 million comparisons (~0.2 s) to build. The decoder refuses the first key
    that is not text or bytes, so no dict of them is ever built."""
    protocol = PROTOCOLS[name]
    raw = colliding_pair_keys(5000)
    assert len(raw) < 100_000
    for message in (raw, dumps([actions_of(protocol)[0], Raw(raw)])):
        assert "map key must be a text string" in str(verdict(protocol, message))


@pytest.mark.timeout(HOSTILE_TIMEOUT)
@pytest.mark.parametrize("nesting", NESTINGS)
def test_100k_deep_nesting_is_refused(nesting: str) -> None:
    """Alone and as the data of each action of each protocol (a recursion must not follow it)."""
    inner = NESTINGS[nesting]
    for _, protocol in DIRECTIONS:
        assert refused(protocol, inner)
        for action in actions_of(protocol):
            assert refused(protocol, dumps([action, Raw(inner)])), action


@pytest.mark.timeout(HOSTILE_TIMEOUT)
@pytest.mark.parametrize("name", PEER_FACING)
def test_a_map_of_50k_colliding_keys_is_refused(name: str) -> None:
    """Built into a dict, such a map costs over a billion key comparisons (~15 s): no peer's
    message holds a map, so it must be refused before it is built."""
    protocol = PROTOCOLS[name]
    raw = colliding_keys(50_000)
    assert refused(protocol, raw)
    assert refused(protocol, dumps([actions_of(protocol)[0], Raw(raw)]))


# -- the original's file queue: raw frames, no CBOR ------------------------------------------

_FRAME = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"HELLO", b"CHUNK", b"FETCH", b"DONE", b"0", b"9" * 19, b"9" * 20, b"-1"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: b"%d" % n),
)


@pytest.mark.parametrize(
    "protocol",
    [protocols.original.file_juggler, reversed(protocols.original.file_juggler)],
    ids=["original_file_juggler", "original_file_juggler-peer"],
)
@DECODER
@given(frames=st.lists(_FRAME, min_size=1, max_size=5))
def test_any_frames_decode_or_are_refused(protocol: Protocol, frames: list[bytes]) -> None:
    """A frame of digits is an int of at most 19 of them (it fits 64 bits); anything else,
    or a count of frames the action does not take, is a ProtocolError and nothing more."""
    try:
        action, data = decode_frames(protocol, frames)
    except ProtocolError as exc:
        assert len(str(exc)) < MAX_ERROR_TEXT
        return
    assert action in protocol.recv
    for value in data if isinstance(data, tuple) else (data,):
        assert not isinstance(value, int) or 0 <= value < 10**19
