"""Sockets that speak a protocol: envelopes, peers' addresses and routing ids, and what a
peer's bad message becomes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from piwheels import protocols
from piwheels.message_codec import ProtocolError, encode
from piwheels.transport import (
    Socket,
    chose_routing_id,
    private_routing_id,
    recv_at_most,
    recv_frames,
    send_frames,
)
from refusing_server import RefusingServer

MASTER = protocols.slave_driver
SLAVE = reversed(protocols.slave_driver)


def router(context: zmq.Context[Any], **options: Any) -> tuple[Socket, str]:
    sock = Socket(zmq.ROUTER, MASTER, context=context, **options)
    port = sock.zsock.bind_to_random_port("tcp://127.0.0.1")
    return sock, f"tcp://127.0.0.1:{port}"


@pytest.fixture
def pair(context: zmq.Context[Any]) -> Iterator[tuple[zmq.Socket[Any], zmq.Socket[Any]]]:
    address = f"inproc://{uuid.uuid4().hex}"
    left, right = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    left.bind(address)
    right.connect(address)
    yield left, right
    left.close(linger=0)
    right.close(linger=0)


def test_frames_travel_as_one_message(pair: tuple[zmq.Socket[Any], zmq.Socket[Any]]) -> None:
    left, right = pair
    send_frames(left, [b"a", b"", b"c"])
    send_frames(left, [b"next"])
    assert recv_frames(right) == [b"a", b"", b"c"]
    assert recv_frames(right) == [b"next"]


def test_frames_past_what_is_kept_are_counted_and_dropped(
    pair: tuple[zmq.Socket[Any], zmq.Socket[Any]],
) -> None:
    left, right = pair
    send_frames(left, [b"1", b"2", b"3", b"4", b"5"])
    send_frames(left, [b"after"])
    assert recv_at_most(right, 2) == ([b"1", b"2"], 5)
    frames, count = recv_at_most(right, 2, copy=False)
    assert count == 1 and frames[0].bytes == b"after"


def test_a_private_routing_id_is_never_one_libzmq_makes() -> None:
    ids = {private_routing_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(each) == 16 and chose_routing_id(each) for each in ids)
    assert not chose_routing_id(b"\0\x12\x34\x56\x78")


def test_a_dealer_and_a_router_talk_in_envelopes(context: zmq.Context[Any]) -> None:
    master, address = router(context)
    with master, Socket(zmq.DEALER, SLAVE, context=context).connect(address) as slave:
        slave.send("BYE")
        assert master.poll(5000)
        frames, _ = recv_at_most(master.zsock, 10)
        assert frames[1:] == [b"", encode(SLAVE, "BYE")]  # the REQ-style empty delimiter
        peer = frames[0]
        assert not chose_routing_id(peer)  # the slave chose none: libzmq made it up
        master.send_to(peer, "BUILD", ("numpy", "2.0"))
        assert slave.poll(5000)
        assert slave.recv() == ("BUILD", ("numpy", "2.0"))


def test_a_peer_is_known_by_its_chosen_id_and_address(context: zmq.Context[Any]) -> None:
    master, address = router(context, peer_addresses=True)
    chosen = private_routing_id()
    with master, Socket(zmq.DEALER, SLAVE, context=context) as slave:
        slave.zsock.setsockopt(zmq.ROUTING_ID, chosen)
        slave.connect(address).send("SENT")
        assert master.poll(5000)
        assert master.recv_from() == (chosen, "SENT", protocols.NO_DATA)
        assert master.peer == "127.0.0.1"


def test_a_peer_over_ipc_has_no_address(context: zmq.Context[Any], tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/queue"
    with (
        Socket(zmq.ROUTER, MASTER, context=context, peer_addresses=True).bind(address) as master,
        Socket(zmq.DEALER, SLAVE, context=context).connect(address) as slave,
    ):
        slave.send("BYE")
        assert master.poll(5000)
        assert master.recv_from()[1] == "BYE"
        assert master.peer == ""


def test_a_bad_message_is_refused_with_who_sent_it(context: zmq.Context[Any]) -> None:
    master, address = router(context)
    with master, Socket(zmq.DEALER, SLAVE, context=context) as slave:
        slave.zsock.setsockopt(zmq.ROUTING_ID, b"\x01bad")
        slave.connect(address)
        send_frames(slave.zsock, [b"", b"\xff not cbor"])
        send_frames(slave.zsock, [b"no delimiter"])
        send_frames(slave.zsock, [b"", b"x", b"y"])
        slave.send("BYE")
        for error in ("not a CBOR message", r"malformed envelope \(2 frames\)", "4 frames"):
            assert master.poll(5000)
            with pytest.raises(ProtocolError, match=error) as refused:
                master.recv_from()
            assert refused.value.address == b"\x01bad"
        assert master.recv_from() == (b"\x01bad", "BYE", protocols.NO_DATA)


def test_a_dealer_refuses_a_reply_out_of_its_envelope(context: zmq.Context[Any]) -> None:
    master, address = router(context)
    with master, Socket(zmq.DEALER, SLAVE, context=context).connect(address) as slave:
        slave.send("BYE")
        assert master.poll(5000)
        peer = master.recv_from()[0]
        send_frames(master.zsock, [peer, encode(MASTER, "DONE")])  # no delimiter
        master.send_to(peer, "DONE")
        assert slave.poll(5000)
        with pytest.raises(ProtocolError, match="slave driver \\(peer\\): malformed envelope"):
            slave.recv()
        assert slave.recv() == ("DONE", protocols.NO_DATA)


def test_a_message_larger_than_allowed_never_arrives(context: zmq.Context[Any]) -> None:
    master, address = router(context, max_message_size=1000)
    with master, Socket(zmq.DEALER, SLAVE, context=context).connect(address) as slave:
        send_frames(slave.zsock, [b"", b"x" * 2000])
        assert not master.poll(300)


def test_a_payload_that_cannot_be_filled_is_not_sent(context: zmq.Context[Any]) -> None:
    juggler = Socket(zmq.ROUTER, protocols.file_juggler, context=context)
    port = juggler.zsock.bind_to_random_port("tcp://127.0.0.1")
    with (
        juggler,
        Socket(zmq.DEALER, reversed(protocols.file_juggler), context=context) as sender,
    ):
        sender.connect(f"tcp://127.0.0.1:{port}")

        def fail(_payload: memoryview) -> None:
            raise OSError("the disk went away")

        with pytest.raises(OSError, match="went away"):
            sender.send_filled("CHUNK", (0,), 10, fail)
        sender.send_filled(
            "CHUNK", (4,), 3, lambda payload: payload.__setitem__(slice(None), b"abc")
        )
        assert juggler.poll(5000)
        _, action, chunk = juggler.recv_from()
        assert (action, chunk) == ("CHUNK", (4, b"abc"))


def test_a_send_on_a_refused_connection_waits_for_the_caller_not_for_ever(
    context: zmq.Context[Any], refusing_server: RefusingServer
) -> None:
    # libzmq drops a connection whose handshake was refused for good, and the socket is left
    # with no pipe: a blocking send would never return.
    sock = Socket(zmq.DEALER, reversed(protocols.file_juggler), context=context)
    refusing_server.keys.secure(sock.zsock)
    monitor = sock.zsock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sock.connect(refusing_server.address)
    sock.send("HELLO", 1)  # queued while the handshake goes on
    assert monitor.poll(10_000), "the handshake was not refused"
    wait_for_no_pipe = time.monotonic() + 5
    while True:
        try:
            sock.zsock.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            break
        assert time.monotonic() < wait_for_no_pipe, "the refused connection is still there"
        time.sleep(0.01)
    waits: list[float] = []

    def waiting() -> None:
        waits.append(time.monotonic())
        if len(waits) == 3:
            raise TimeoutError

    with pytest.raises(TimeoutError):
        sock.send_unstuck("HELLO", 1, waiting=waiting, pause=0.01)
    sock.close()
    monitor.close(linger=0)
