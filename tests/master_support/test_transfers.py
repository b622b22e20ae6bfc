"""What the File Juggler knows of a file it is fetching: how much has come, how far its
hashing lags, and a transfer's errors of the kinds its control protocol declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm import file_state
from piwheels.master_support.transfers import CHUNK_SIZE, Hashing, Transfer, TransferError

WHEEL = "foo-1.0-py3-none-any.whl"


def test_a_transfer_is_complete_once_every_byte_has_come(tmp_path: Path) -> None:
    state = file_state(WHEEL, b"x" * (CHUNK_SIZE + 1))
    transfer = Transfer(1, state, tmp_path / WHEEL, tmp_path / "temp", -1, b"\0slave", "", "")
    assert not transfer.complete
    transfer.received = CHUNK_SIZE
    assert not transfer.complete
    transfer.received = CHUNK_SIZE + 1
    assert transfer.complete
    assert transfer.verdict is None and not transfer.storing
    assert transfer.address is None  # until its file connection says HELLO


def test_the_hashing_backlog_counts_chunks_begun() -> None:
    hashing = Hashing()
    assert hashing.backlog == 0
    hashing.queued = 2 * CHUNK_SIZE + 1
    assert hashing.backlog == 3
    hashing.done = 2 * CHUNK_SIZE
    assert hashing.backlog == 1
    hashing.done = hashing.queued
    assert hashing.backlog == 0


def test_an_error_is_of_a_declared_kind() -> None:
    error = TransferError("no-room", "the output disk is full")
    assert (error.failure.kind, error.failure.message) == ("no-room", "the output disk is full")
    assert str(error) == "the output disk is full"
    with pytest.raises(ValueError, match="no error kind 'gone'"):
        TransferError("gone", "where?")
