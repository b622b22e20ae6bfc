"""The spec's protocols with peers outside the master: what each end may say, and the bounds a
peer's message is held to."""

from __future__ import annotations

from datetime import timedelta

import cbor2
import pytest

from piwheels.codec import Bytes, ShapeError
from piwheels.failures import MAX_WANTS
from piwheels.message_codec import ProtocolError, decode
from piwheels.protocols.base import PEER_MAX_ITEMS
from piwheels.protocols.wire import (
    BUILD_RESULT,
    DIAGNOSIS,
    FILE_STATE,
    file_juggler,
    master_commands,
    mr_chase,
    slave_driver,
    status,
)
from piwheels.records.builds import Dependency, FileState

FILE = ["foo-1.0-py3-none-any.whl", 10, "a" * 64, "foo", "1.0", "py3", "none", "any"]


def test_every_peer_that_speaks_is_held_to_the_bound() -> None:
    for protocol in (slave_driver, file_juggler, mr_chase, master_commands):
        assert protocol.max_items == PEER_MAX_ITEMS, protocol.name
    # monitors only listen: the status queue has nothing to bound
    assert status.recv == {}
    assert status.max_items is None


def test_the_slave_driver_speaks_the_spec_and_resume() -> None:
    assert set(slave_driver.recv) == {"HELLO", "IDLE", "BUSY", "BUILT", "SENT", "BYE", "RESUME"}
    assert set(slave_driver.send) == {"ACK", "SLEEP", "DIE", "BUILD", "CONT", "SEND", "DONE"}


def test_a_chunk_carries_its_offset_and_ends_in_bytes() -> None:
    chunk = file_juggler.recv["CHUNK"]
    assert chunk.fields[-1] is Bytes
    assert chunk.check([65536, b"\x00" * 3], "CHUNK") == (65536, b"\x00" * 3)
    assert file_juggler.send["FETCH"].check([0, 4096], "FETCH").length == 4096


def test_a_files_dependencies_are_a_set_of_at_most_256() -> None:
    deps = [["apt", "libc6"], ["pip", "bar"], ["apt", "libc6"]]
    wheel = FILE_STATE.check([*FILE, deps, ">=3.9"], "file")
    assert isinstance(wheel, FileState)
    assert wheel.dependencies == frozenset({Dependency("apt", "libc6"), Dependency("pip", "bar")})
    many = [["pip", f"dep{n}"] for n in range(257)]
    with pytest.raises(ShapeError, match=r"file\.dependencies: more than 256 items"):
        FILE_STATE.check([*FILE, many, None], "file")


def test_a_result_carries_at_most_100_files() -> None:
    files = [[*FILE, [], None]] * 101
    with pytest.raises(ShapeError, match=r"BUILT\.files: more than 100 items"):
        BUILD_RESULT.check([True, timedelta(1), "log", files], "BUILT")
    assert len(BUILD_RESULT.check([True, timedelta(1), "log", files[:100]], "BUILT").files) == 100


def test_a_diagnosis_names_at_most_its_bound_of_wants() -> None:
    wants = [["header", f"h{n}.h"] for n in range(MAX_WANTS + 1)]
    with pytest.raises(ShapeError, match=rf"more than {MAX_WANTS} items"):
        DIAGNOSIS.check(["missing-header", "", wants, []], "diagnosis")
    diagnosis = DIAGNOSIS.check(["missing-header", "", wants[:1], ["libfoo-dev"]], "d")
    assert diagnosis.wants == [("header", "h0.h")]


def test_an_operators_request_may_leave_the_version_to_mean_all() -> None:
    assert mr_chase.recv["RETRY"].check(["foo", "1.0", None], "RETRY").abi_tag is None
    assert mr_chase.recv["REBUILD"].check(["HOME", None], "REBUILD").package is None
    assert master_commands.recv["SLEEP"].check(None, "SLEEP") is None


def test_a_message_longer_than_the_bound_is_refused_before_it_is_built() -> None:
    # one dependency past what a BUILT may hold in items, in a message cbor2 would build fine
    deps = [["pip", "x"]] * (PEER_MAX_ITEMS // 3)
    raw = cbor2.dumps(["BUILT", True, cbor2.CBORTag(2001, [0, 1, 0]), "", [[*FILE, deps, None]]])
    with pytest.raises(ProtocolError, match=f"more than {PEER_MAX_ITEMS} items"):
        decode(slave_driver, raw)
