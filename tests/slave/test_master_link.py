"""The slave's connection to the Slave Driver, against a ROUTER the test answers by hand over
real ZeroMQ sockets. How the agent acts on each way a conversation ends is tests/slave/
test_agent.py's."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def _link(
    context: zmq.Context[Any],
    address: str,
    *,
    timeout: float = 10.0,
    stop: threading.Event | None = None,
    keys: Any = None,
) -> Iterator[MasterLink]:
    def check_stop() -> None:
        if stop is not None and stop.is_set():
            raise _Stopped

    link = MasterLink(
        context,
        address,
        keys,
        file_address="tcp://127.0.0.1:9",  # no file is sent here
        timeout=timeout,
        clock=time.monotonic,
        check_stop=check_stop,
    )
    try:
        yield link
    finally:
        link.close()


@contextlib.contextmanager
def _answering(driver: Socket, *frames: bytes, action: str = "") -> Iterator[None]:
    """Answer the next request on *driver* with *action* (or raw *frames*), in a thread of its
    own while the block runs: the link blocks."""

    def answer() -> None:
        assert driver.poll(10_000)
        request = driver.zsock.recv_multipart()
        if action:
            driver.send_to(request[0], action)
        else:
            driver.zsock.send_multipart([request[0], b"", *frames])

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def test_a_request_returns_the_masters_reply(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    with _link(context, address) as link, _answering(sock, action="SLEEP"):
        assert link.request("IDLE", _stats()) == ("SLEEP", protocols.NO_DATA)


def test_die_is_raised_wherever_it_comes(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    with (
        _link(context, address) as link,
        _answering(sock, action="DIE"),
        pytest.raises(MasterSaidDieError),
    ):
        link.request("IDLE", _stats())


def test_a_silent_master_times_out(context: zmq.Context[Any], driver: tuple[Socket, str]) -> None:
    with (
        _link(context, driver[1], timeout=0.5) as link,
        pytest.raises(MasterTimeoutError, match=r"no answer to IDLE within 0\.5s"),
    ):
        link.request("IDLE", _stats())


def test_a_reply_outside_the_protocol_confuses_the_link(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    with (
        _link(context, address) as link,
        _answering(sock, b"\xff not CBOR"),
        pytest.raises(MasterConfusedError),
    ):
        link.request("IDLE", _stats())


def test_a_stop_ends_the_wait(context: zmq.Context[Any], driver: tuple[Socket, str]) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with _link(context, driver[1], stop=stop) as link, pytest.raises(_Stopped):
        link.request("IDLE", _stats())


def test_a_master_that_goes_away_is_noticed(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    with _link(context, address) as link:
        with _answering(sock, action="SLEEP"):
            link.request("IDLE", _stats())  # connected
        sock.close()
        with pytest.raises(MasterGoneError):
            link.request("IDLE", _stats())


def test_a_refused_key_is_said_with_its_fingerprint(
    context: zmq.Context[Any], refusing_server: RefusingServer
) -> None:
    keys = refusing_server.keys
    with (
        _link(context, refusing_server.address, keys=keys) as link,
        pytest.raises(MasterRefusedError, match=re.escape(keys.pair.fingerprint)),
    ):
        link.request("IDLE", _stats())


def test_bye_is_sent_and_the_socket_closed(
    context: zmq.Context[Any], driver: tuple[Socket, str]
) -> None:
    sock, address = driver
    with _link(context, address) as link:  # closed after BYE too
        with _answering(sock, action="SLEEP"):
            link.request("IDLE", _stats())
        link.say_bye(1.0)
        assert sock.poll(10_000)
        _, action, _ = sock.recv_from()
        assert action == "BYE"


def _stats() -> SlaveStats:
    return SlaveStats(datetime.now(UTC), 1, 1, 1, 1, 0.0, 40.0)
