"""The sending side of a file: each FETCH answered with its CHUNK, read straight into the frame."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from piwheels import protocols
from piwheels.file_sender import MAX_CHUNK, answer_fetch, send_file
from piwheels.transport import Socket
from refusing_server import RefusingServer

SENDER = reversed(protocols.file_juggler)
RECEIVER = protocols.file_juggler


def test_a_chunk_is_read_straight_into_its_frame(tmp_path: Path) -> None:
    content = os.urandom(3000)
    (tmp_path / "wheel").write_bytes(content)
    context: zmq.Context[Any] = zmq.Context()
    try:
        with (
            Socket(zmq.ROUTER, RECEIVER, context=context) as master,
            Socket(zmq.DEALER, SENDER, context=context) as slave,
            (tmp_path / "wheel").open("rb") as wheel,
        ):
            port = master.zsock.bind_to_random_port("tcp://127.0.0.1")
            slave.connect(f"tcp://127.0.0.1:{port}")
            assert answer_fetch(slave, wheel, 1000, 1500)
            assert master.poll(5000)
            _, action, (offset, chunk) = master.recv_from(copy=False)
            assert (action, offset, bytes(chunk)) == ("CHUNK", 1000, content[1000:2500])
            # beyond the end: refused, nothing sent
            assert not answer_fetch(slave, wheel, 2000, 1001)
            assert not master.poll(100)
    finally:
        context.destroy(linger=0)


class Stop(Exception):
    pass


def juggler_side(context: zmq.Context[Any]) -> tuple[Socket, str]:
    """The File Juggler's end of the file queue, on a port of its own."""
    master = Socket(zmq.ROUTER, RECEIVER, context=context)
    port = master.zsock.bind_to_random_port("tcp://127.0.0.1")
    return master, f"tcp://127.0.0.1:{port}"


def test_a_file_is_sent_as_fetched_until_done(context: zmq.Context[Any], tmp_path: Path) -> None:
    content = os.urandom(5000)
    (tmp_path / "wheel").write_bytes(content)
    master, address = juggler_side(context)
    heard: list[tuple[int, int]] = []
    outcome: list[bool] = []
    with master, (tmp_path / "wheel").open("rb") as wheel:
        sender = threading.Thread(
            target=lambda: outcome.append(
                send_file(
                    context,
                    address,
                    7,
                    wheel,
                    timeout=10,
                    on_chunk=lambda offset, length: heard.append((offset, length)),
                    routing_id=b"\x01slave-7",
                )
            )
        )
        sender.start()
        try:
            assert master.poll(5000)
            peer, action, slave_id = master.recv_from()
            assert (peer, action, slave_id) == (b"\x01slave-7", "HELLO", 7)
            received = b""
            # the same chunk asked for twice is sent (and reported) twice
            for offset, length in ((0, 3000), (0, 3000), (3000, 2000)):
                master.send_to(peer, "FETCH", (offset, length))
                assert master.poll(5000)
                _, action, (got, chunk) = master.recv_from()
                assert (action, got) == ("CHUNK", offset)
                received = received[:offset] + chunk
            master.send_to(peer, "DONE")
        finally:
            sender.join(10)
    assert outcome == [True]
    assert received == content
    assert heard == [(0, 3000), (0, 3000), (3000, 2000)]


def test_a_fetch_beyond_the_file_is_not_answered(context: zmq.Context[Any], tmp_path: Path) -> None:
    (tmp_path / "wheel").write_bytes(b"x" * 100)
    master, address = juggler_side(context)
    heard: list[tuple[int, int]] = []
    with master, (tmp_path / "wheel").open("rb") as wheel:
        sender = threading.Thread(
            target=send_file,
            args=(context, address, 1, wheel),
            kwargs={"timeout": 10, "on_chunk": lambda *chunk: heard.append(chunk)},
        )
        sender.start()
        try:
            assert master.poll(5000)
            peer, _, _ = master.recv_from()
            for offset, length in ((50, 51), (-1, 10), (0, 0), (0, MAX_CHUNK + 1)):
                master.send_to(peer, "FETCH", (offset, length))
            assert not master.poll(300)
            master.send_to(peer, "DONE")
        finally:
            sender.join(10)
    assert not sender.is_alive()
    assert heard == []


def test_a_silent_juggler_ends_the_transfer_not_the_caller(
    context: zmq.Context[Any], tmp_path: Path
) -> None:
    (tmp_path / "wheel").write_bytes(b"x")
    master, address = juggler_side(context)
    with master, (tmp_path / "wheel").open("rb") as wheel:
        started = time.monotonic()
        assert not send_file(context, address, 1, wheel, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 5
        assert master.recv_from()[1] == "HELLO"  # it said who it was, then heard nothing


def test_the_caller_may_abandon_a_transfer(context: zmq.Context[Any], tmp_path: Path) -> None:
    (tmp_path / "wheel").write_bytes(b"x")
    master, address = juggler_side(context)
    checks: list[float] = []

    def check_stop() -> None:
        checks.append(time.monotonic())
        if len(checks) == 3:
            raise Stop

    with master, (tmp_path / "wheel").open("rb") as wheel, pytest.raises(Stop):
        send_file(context, address, 1, wheel, timeout=10, check_stop=check_stop)
    assert len(checks) == 3


def test_a_refused_connection_ends_the_transfer_as_silence_does(
    context: zmq.Context[Any], refusing_server: RefusingServer, tmp_path: Path
) -> None:
    (tmp_path / "wheel").write_bytes(b"x")
    with (tmp_path / "wheel").open("rb") as wheel:
        started = time.monotonic()
        sent = send_file(
            context, refusing_server.address, 1, wheel, timeout=0.5, keys=refusing_server.keys
        )
        assert not sent
        assert time.monotonic() - started < 5
