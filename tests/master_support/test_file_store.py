"""A finished file checked and put in place off the File Juggler's loop, and its chunks hashed
as they come."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm import file_state
from piwheels.master_support.file_store import WRITEBACK, hash_chunk, store
from piwheels.master_support.transfers import CHUNK_SIZE, Transfer

WHEEL = "foo-1.0-py3-none-any.whl"


@pytest.fixture
def content() -> bytes:
    return os.urandom(2 * CHUNK_SIZE + 77)


@pytest.fixture
def transfer(tmp_path: Path, content: bytes) -> Iterator[Transfer]:
    temp = tmp_path / f".{WHEEL}.1234abcd.part"
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    yield Transfer(1, file_state(WHEEL, content), tmp_path / WHEEL, temp, fd, b"\0slave", "", "")
    os.close(fd)


def chunks(content: bytes) -> list[tuple[int, bytes]]:
    return [
        (offset, content[offset : offset + CHUNK_SIZE])
        for offset in range(0, len(content), CHUNK_SIZE)
    ]


def receive(transfer: Transfer, pieces: list[tuple[int, bytes]]) -> None:
    """Write *pieces* as the loop does, hashing those that come in order as it does."""
    for offset, data in pieces:
        os.pwrite(transfer.fd, data, offset)
        transfer.received += len(data)
        if offset == transfer.hashing.done:
            hash_chunk(transfer, transfer.hashing, data)


def test_a_file_hashed_as_it_came_is_put_in_place(transfer: Transfer, content: bytes) -> None:
    receive(transfer, chunks(content))
    assert transfer.complete and transfer.hashing.done == len(content)
    assert store(transfer) == ""
    assert transfer.target.read_bytes() == content
    assert not transfer.temp.exists()


def test_a_file_that_came_out_of_order_is_read_back_to_be_checked(
    transfer: Transfer, content: bytes
) -> None:
    receive(transfer, list(reversed(chunks(content))))
    assert transfer.hashing.done < len(content)  # only the first chunk was hashed on the way
    assert store(transfer) == ""
    assert transfer.target.read_bytes() == content


def test_a_file_that_is_not_what_was_promised_stays_out(transfer: Transfer, content: bytes) -> None:
    receive(transfer, chunks(content[:-1] + b"\0"))
    verdict = store(transfer)
    assert verdict.startswith(f"{WHEEL}: SHA256 ")
    assert verdict.endswith(f"does not match {transfer.file.filehash}")
    assert not transfer.target.exists()


def test_a_file_that_cannot_be_stored_says_why(transfer: Transfer, content: bytes) -> None:
    receive(transfer, chunks(content))
    transfer.target = transfer.target.parent / "gone" / WHEEL
    assert store(transfer).startswith(f"cannot store {WHEEL}: ")


def test_a_hashed_chunk_wakes_the_loop_only_when_it_waits(
    transfer: Transfer, content: bytes
) -> None:
    hashing = transfer.hashing
    assert not hash_chunk(transfer, hashing, content[:10])
    hashing.stalled = True
    assert hash_chunk(transfer, hashing, content[10:20])
    assert not hashing.stalled
    assert not hash_chunk(transfer, hashing, content[20:30])
    assert hashing.done == 30


def test_the_disk_is_given_what_was_hashed_while_the_rest_arrives(transfer: Transfer) -> None:
    hashing = transfer.hashing
    hash_chunk(transfer, hashing, b"\0" * (WRITEBACK - 1))
    assert hashing.written_back == 0
    hash_chunk(transfer, hashing, b"\0")
    assert hashing.written_back == WRITEBACK
