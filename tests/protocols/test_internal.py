"""The master's own queues: the Oracles' and the File Juggler's requests and replies, and what
passes between its tasks and its children."""

from __future__ import annotations

from datetime import timedelta

import pytest

from piwheels.abis import BuildABI
from piwheels.codec import ShapeError
from piwheels.protocols.base import Failure, Protocol
from piwheels.protocols.internal import (
    FILE_ERRORS,
    ORACLE_ERRORS,
    QUEUE,
    architect,
    fetcher,
    file_juggler_control,
    master_control,
    oracle,
    page_writer,
    seraph_workers,
    slave_commands,
    task_control,
    web,
)
from piwheels.protocols.messages import FetchAnswer, PagesWritten, TaskFailure
from piwheels.records.builds import PackageVersion, QueueSnapshot

INTERNAL = [
    task_control,
    master_control,
    oracle,
    seraph_workers,
    web,
    architect,
    file_juggler_control,
    slave_commands,
    page_writer,
    fetcher,
]
REQUEST_REPLY = [oracle, file_juggler_control]


def test_the_masters_tasks_trust_each_other() -> None:
    assert all(protocol.max_items is None for protocol in INTERNAL)


@pytest.mark.parametrize("protocol", REQUEST_REPLY, ids=lambda protocol: protocol.name)
def test_every_request_has_a_reply_and_the_askers_own_errors(protocol: Protocol) -> None:
    assert set(protocol.replies) == set(protocol.recv)
    assert set(protocol.send) == {"OK", "ERROR"}
    # answer() makes "malformed" and the asker "timeout": each must be a declared kind
    assert {"malformed", "timeout"} <= protocol.errors


def test_each_queue_has_its_own_errors() -> None:
    assert oracle.errors == frozenset(ORACLE_ERRORS)
    assert file_juggler_control.errors == frozenset(FILE_ERRORS)
    assert "no-room" in FILE_ERRORS and "no-room" not in ORACLE_ERRORS
    with pytest.raises(ValueError, match="no error kind 'no-room'"):
        oracle.failure("no-room", "full")


def test_an_oracles_answers_decode_into_their_records() -> None:
    queue = oracle.answer("GETQUEUE", "OK", [{"cp311": [["foo", "1.0"]]}, {"cp311": 4}, 12])
    assert queue == QueueSnapshot({"cp311": [PackageVersion("foo", "1.0")]}, {"cp311": 4}, 12)
    assert type(queue.heads["cp311"][0]) is PackageVersion
    [abi] = oracle.answer("GETABIS", "OK", [["cp311", 311, "3.11"]])
    assert type(abi) is BuildABI
    assert abi.python_version == "3.11"
    assert file_juggler_control.answer("STALLED", "OK", 2) == 2.0
    assert file_juggler_control.answer("STALLED", "OK", None) is None


def test_the_queue_says_how_far_it_has_read() -> None:
    assert QUEUE.check([{}, {}, 7], "QUEUE").last_build == 7
    with pytest.raises(ShapeError, match=r"QUEUE: expected 3 fields"):
        QUEUE.check([{}, {}], "QUEUE")


def test_tasks_tell_the_master_why_they_stopped() -> None:
    failed = master_control.recv["FAILED"].check(["Oracle 0", "Traceback..."], "FAILED")
    assert failed == TaskFailure("Oracle 0", "Traceback...")
    assert master_control.recv["QUIT"] is None


def test_the_children_speak_each_their_own_way() -> None:
    done = page_writer.recv["DONE"].check(["foo", True, False], "DONE")
    assert done == PagesWritten("foo", new=True, retry=False)
    assert set(reversed(page_writer).send) == {"DONE", "LOG"}
    fetched = fetcher.recv["FETCHED"].check(
        [3, [[None, ["not-found", "gone"]], [None, None]]], "FETCHED"
    )
    assert isinstance(fetched, FetchAnswer)
    assert fetched.results[0].failure == Failure("not-found", "gone")
    assert fetched.results[1] == (None, None)


def test_a_lost_build_carries_how_long_it_ran() -> None:
    request = oracle.recv["LOSTBUILD"].check(
        [1, "foo", "1.0", "cp311", timedelta(minutes=2), "silent"], "LOSTBUILD"
    )
    assert request.duration == timedelta(minutes=2)
