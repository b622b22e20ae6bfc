"""The Slave Driver's picture of the build queue, driven by hand: handed out in order, never
what is building, and a build just recorded not handed out again from a picture too old to
know of it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import make_config
from piwheels import protocols
from piwheels.master.slave_driver import SlaveDriver
from piwheels.master_support.build_queue import RECENTLY_FINISHED
from piwheels.master_support.config import MasterConfig
from piwheels.transport import Socket


@pytest.fixture
def config(tmp_path: Path) -> MasterConfig:
    return make_config("", tmp_path, tmp_path, ["cp39", "cp311"])


@pytest.fixture
def driver(
    config: MasterConfig, context: zmq.Context[Any], status: Socket
) -> Iterator[SlaveDriver]:
    task = SlaveDriver(config, context)  # driven by hand here, not started
    yield task
    task.close()


@pytest.fixture
def architect(
    config: MasterConfig, context: zmq.Context[Any], driver: SlaveDriver
) -> Iterator[Socket]:
    with Socket(zmq.PUSH, protocols.architect, context=context) as sock:
        sock.connect(config.builds_queue)
        yield sock


def picture(
    driver: SlaveDriver, architect: Socket, heads: dict[str, list[tuple[str, str]]], last: int
) -> None:
    """The Architect's picture of the queue, taken in by the Slave Driver."""
    architect.send("QUEUE", (heads, {abi: len(entries) for abi, entries in heads.items()}, last))
    assert driver.builds_queue.poll(5000)
    driver.handle_queue()


def handed_out(driver: SlaveDriver, abi: str) -> list[tuple[str, str, str]]:
    builds = []
    while (build := driver.next_build(abi)) is not None:
        builds.append(build)
    return builds


def test_builds_are_handed_out_in_the_pictures_order(
    driver: SlaveDriver, architect: Socket, status: Socket
) -> None:
    heads = {"cp39": [("foo", "2.0"), ("bar", "1.0")], "cp311": [("foo", "1.0")]}
    picture(driver, architect, heads, 0)
    assert status.recv() == ("QUEUE", {"cp39": 2, "cp311": 1})
    assert handed_out(driver, "cp39") == [("foo", "2.0", "cp39"), ("bar", "1.0", "cp39")]
    assert handed_out(driver, "cp311") == [("foo", "1.0", "cp311")]
    assert driver.next_build("cp313") is None  # an ABI the picture does not have


def test_a_build_under_way_is_not_handed_out_again(driver: SlaveDriver, architect: Socket) -> None:
    driver.active[("foo", "2.0", "cp39")] = 7
    picture(driver, architect, {"cp39": [("foo", "2.0"), ("bar", "1.0")]}, 0)
    assert handed_out(driver, "cp39") == [("bar", "1.0", "cp39")]


def test_a_build_just_recorded_waits_for_a_picture_that_knows_of_it(
    driver: SlaveDriver, architect: Socket
) -> None:
    driver.finished[("foo", "2.0", "cp39")] = (10, time.monotonic())
    picture(driver, architect, {"cp39": [("foo", "2.0")]}, 9)  # read before it was recorded
    assert handed_out(driver, "cp39") == []
    assert ("foo", "2.0", "cp39") in driver.finished
    # read after it was recorded, and listing it still: it was queued again since
    picture(driver, architect, {"cp39": [("foo", "2.0")]}, 10)
    assert handed_out(driver, "cp39") == [("foo", "2.0", "cp39")]
    assert driver.finished == {}


def test_a_build_recorded_long_ago_is_forgotten_whatever_the_picture(
    driver: SlaveDriver, architect: Socket
) -> None:
    driver.finished[("foo", "2.0", "cp39")] = (10, time.monotonic() - RECENTLY_FINISHED - 1)
    picture(driver, architect, {"cp39": [("foo", "2.0")]}, 0)
    assert handed_out(driver, "cp39") == [("foo", "2.0", "cp39")]


def test_a_picture_it_cannot_read_changes_nothing(
    driver: SlaveDriver, architect: Socket, caplog: pytest.LogCaptureFixture
) -> None:
    picture(driver, architect, {"cp39": [("foo", "2.0")]}, 0)
    architect.zsock.send(b"\xff not a queue")
    assert driver.builds_queue.poll(5000)
    with caplog.at_level(logging.ERROR):
        driver.handle_queue()
    assert "bad queue message" in caplog.text
    assert handed_out(driver, "cp39") == [("foo", "2.0", "cp39")]
