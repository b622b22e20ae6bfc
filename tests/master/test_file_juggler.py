"""The File Juggler's storing of a finished file, which happens off its loop, driven by hand."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import file_state, make_config
from piwheels.master.file_juggler import HASH_BACKLOG, WINDOW, FileJuggler
from piwheels.master_support.transfers import CHUNK_SIZE, Transfer
from piwheels.records.builds import FileState

WHEEL = "piwtest_pure-1.0-py3-none-any.whl"
CONTENT = os.urandom(2 * CHUNK_SIZE + 77)


@pytest.fixture
def juggler(tmp_path: Path) -> Iterator[FileJuggler]:
    context: zmq.Context[Any] = zmq.Context()
    (tmp_path / "www").mkdir()
    task = FileJuggler(make_config("", tmp_path / "www", tmp_path, ["cp311"]), context)
    yield task
    task.close()
    context.destroy(linger=0)


def receive_all(juggler: FileJuggler, state: FileState, content: bytes) -> Transfer:
    """EXPECT a file from slave 1 and take in all of *content* as if the slave sent it."""
    juggler.expect(1, "piwtest-pure", state, b"\0slave", "", "")
    transfer = juggler.transfers[1]
    transfer.address = b"\0slave-1"  # queue 0; FETCH and DONE go to a peer not there: dropped
    juggler.by_address[transfer.address] = transfer
    juggler.fill_window(transfer)
    for offset in range(0, len(content), CHUNK_SIZE):
        juggler.receive(transfer, offset, content[offset : offset + CHUNK_SIZE])
    return transfer


def settle(juggler: FileJuggler, transfer: Transfer) -> None:
    deadline = time.monotonic() + 10
    while transfer.storing:
        assert time.monotonic() < deadline, "the store never finished"
        juggler.poll(0.05)


def leftovers(juggler: FileJuggler) -> list[str]:
    """What is in the project's directory; nothing may be left where files arrive."""
    assert not list(juggler.incoming.iterdir())
    return sorted(p.name for p in (juggler.simple / "piwtest-pure").iterdir())


def test_a_complete_file_is_stored_then_verified(juggler: FileJuggler) -> None:
    transfer = receive_all(juggler, file_state(WHEEL, CONTENT), CONTENT)
    assert transfer.storing and transfer.verdict is None  # the worker has it
    settle(juggler, transfer)
    assert transfer.verdict == ""
    assert juggler.verify(1) == str(transfer.target)
    assert hashlib.sha256(transfer.target.read_bytes()).digest() == hashlib.sha256(CONTENT).digest()
    assert leftovers(juggler) == [WHEEL]


def test_a_file_with_the_wrong_hash_is_not_stored(juggler: FileJuggler) -> None:
    wrong = CONTENT[:-1] + bytes([CONTENT[-1] ^ 1])
    transfer = receive_all(juggler, file_state(WHEEL, CONTENT), wrong)
    settle(juggler, transfer)
    assert "does not match" in (transfer.verdict or "")
    assert leftovers(juggler) == []


def test_a_transfer_forgotten_while_storing_leaves_nothing(juggler: FileJuggler) -> None:
    transfer = receive_all(juggler, file_state(WHEEL, CONTENT), CONTENT)
    juggler.forget(1)  # the Slave Driver dropped the slave while the worker stored its file
    assert transfer.forgotten
    settle(juggler, transfer)
    assert leftovers(juggler) == []
    assert transfer.fd == -1


def test_chunks_in_any_order_are_hashed_from_the_disk(juggler: FileJuggler) -> None:
    state = file_state(WHEEL, CONTENT)
    juggler.expect(1, "piwtest-pure", state, b"\0slave", "", "")
    transfer = juggler.transfers[1]
    transfer.address = b"\0slave-1"
    juggler.by_address[transfer.address] = transfer
    juggler.fill_window(transfer)
    offsets = list(range(0, len(CONTENT), CHUNK_SIZE))
    for offset in reversed(offsets):
        juggler.receive(transfer, offset, CONTENT[offset : offset + CHUNK_SIZE])
    settle(juggler, transfer)
    assert transfer.verdict == ""
    assert leftovers(juggler) == [WHEEL]


def test_a_big_file_is_fetched_no_faster_than_it_is_hashed(juggler: FileJuggler) -> None:
    """What the master holds of a transfer is bounded, whatever the file's size."""
    content = os.urandom(40 * CHUNK_SIZE + 5)
    juggler.expect(1, "piwtest-pure", file_state(WHEEL, content), b"\0slave", "", "")
    transfer = juggler.transfers[1]
    transfer.address = b"\0slave-1"
    juggler.by_address[transfer.address] = transfer
    juggler.fill_window(transfer)
    held = 0
    deadline = time.monotonic() + 30
    while not transfer.complete:
        assert time.monotonic() < deadline, "the transfer stalled"
        for offset, length in list(transfer.outstanding.items()):  # the slave answers
            juggler.receive(transfer, offset, content[offset : offset + length])
            held = max(held, len(transfer.outstanding) + transfer.hashing.backlog)
        juggler.poll(0.01)  # hashed chunks make room for more FETCHes
    settle(juggler, transfer)
    assert transfer.verdict == ""
    assert held <= WINDOW + HASH_BACKLOG
    assert transfer.target.read_bytes() == content


def test_a_start_removes_what_an_earlier_master_left_and_nothing_else(
    juggler: FileJuggler,
) -> None:
    # a transfer a kill cut short; one of this master's in progress; a published wheel
    old = juggler.incoming / f".{WHEEL}.0123abcd.part"
    old.write_bytes(b"left by a killed master")
    os.utime(old, (time.time() - 60, time.time() - 60))
    juggler.expect(1, "piwtest-pure", file_state(WHEEL, CONTENT), b"\0slave", "", "")
    current = juggler.transfers[1].temp
    published = juggler.simple / "piwtest-pure" / "piwtest_pure-0.9-py3-none-any.whl"
    published.write_bytes(b"a wheel")
    juggler.remove_leftovers(time.time() - 30)
    assert not old.exists()
    assert current.exists() and current.parent == juggler.incoming
    assert published.exists()
