"""The slave's connection to the Slave Driver, against a ROUTER the test answers by hand over
real ZeroMQ sockets. How the agent acts on each way a conversation ends is tests/slave/
test_agent.py's."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import zmq

from piwheels import protocols
from piwheels.records.slaves import SlaveStats
from piwheels.slave.master_link import (
    MasterConfusedError,
    MasterGoneError,
    MasterLink,
    MasterRefusedError,
    MasterSaidDieError,
    MasterTimeoutError,
)
from piwheels.transport import Socket
from refusing_server import RefusingServer


class _Stopped(Exception):
    pass


@pytest.fixture
def driver(context: zmq.Context[Any]) -> Iterator[tuple[Socket, str]]:
    sock = Socket(zmq.ROUTER, protocols.slave_driver, context=context)
    port = sock.zsock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sock.close()


def _link(
    context: zmq.Context[Any],
    address: str,
    *,
    timeout: float = 10.0,
    stop: threading.Event | None = None,
    keys: Any = None,
) -> MasterLink:
    def check_stop() -> None:
        if stop is not None and stop.is_set():
            raise _Stopped

    return MasterLink(
        context,
        address,
        keys,
        file_address="tcp://127.0.0.1:9",  # no file is sent here
        timeout=timeout,
        clock=time.monotonic,
        check_stop=check_stop,
    )


def _answer(driver: Socket, action: str, data: Any = protocols.NO_DATA) -> threading.Thread:
    """Answer the next request on *driver* with *action* (in a thread: the link blocks)."""

    def answer() -> None:
        assert driver.poll(10_000)
        address, _, _ = driver.recv_from()
        driver.send_to(address, action, data)

    thread = threading.Thread(target=answer)
    thread.start()
    return thread


def test_a_request_returns_the_masters_reply(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    link = _link(context, address)
    answering = _answer(sock, "SLEEP")
    try:
        assert link.request("IDLE", _stats()) == ("SLEEP", protocols.NO_DATA)
    finally:
        answering.join()
        link.close()


def test_die_is_raised_wherever_it_comes(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    link = _link(context, address)
    answering = _answer(sock, "DIE")
    try:
        with pytest.raises(MasterSaidDieError):
            link.request("IDLE", _stats())
    finally:
        answering.join()
        link.close()


def test_a_silent_master_times_out(context: zmq.Context[Any], driver: tuple[Socket, str]) -> None:
    _, address = driver
    link = _link(context, address, timeout=0.5)
    try:
        with pytest.raises(MasterTimeoutError, match=r"no answer to IDLE within 0\.5s"):
            link.request("IDLE", _stats())
    finally:
        link.close()


def test_a_reply_outside_the_protocol_confuses_the_link(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    link = _link(context, address)

    def answer() -> None:
        assert sock.poll(10_000)
        frames = sock.zsock.recv_multipart()
        sock.zsock.send_multipart([frames[0], b"", b"\xff not CBOR"])

    answering = threading.Thread(target=answer)
    answering.start()
    try:
        with pytest.raises(MasterConfusedError):
            link.request("IDLE", _stats())
    finally:
        answering.join()
        link.close()


def test_a_stop_ends_the_wait(context: zmq.Context[Any], driver: tuple[Socket, str]) -> None:
    _, address = driver
    stop = threading.Event()
    link = _link(context, address, stop=stop)
    threading.Timer(0.3, stop.set).start()
    try:
        with pytest.raises(_Stopped):
            link.request("IDLE", _stats())
    finally:
        link.close()


def test_a_master_that_goes_away_is_noticed(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    link = _link(context, address)
    answering = _answer(sock, "SLEEP")
    try:
        link.request("IDLE", _stats())  # connected
        answering.join()
        sock.close()
        with pytest.raises(MasterGoneError):
            link.request("IDLE", _stats())
    finally:
        link.close()


def test_a_refused_key_is_said_with_its_fingerprint(
    context: zmq.Context[Any], refusing_server: RefusingServer
) -> None:
    keys = refusing_server.keys
    link = _link(context, refusing_server.address, keys=keys)
    try:
        with pytest.raises(MasterRefusedError, match=re.escape(keys.pair.fingerprint)):
            link.request("IDLE", _stats())
    finally:
        link.close()


def test_bye_is_sent_and_the_socket_closed(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    link = _link(context, address)
    answering = _answer(sock, "SLEEP")
    link.request("IDLE", _stats())
    answering.join()
    link.say_bye(1.0)
    assert sock.poll(10_000)
    _, action, _ = sock.recv_from()
    assert action == "BYE"
    link.close()  # after BYE too


def _stats() -> SlaveStats:
    return SlaveStats(datetime.now(UTC), 1, 1, 1, 1, 0.0, 40.0)
