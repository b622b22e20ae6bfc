"""QueueGuard on real sockets: past its bound it ends its queues' connections, and when that
frees nothing it says so once rather than cutting off every builder each second. (The hostile
peer that makes it act is tests/master/test_hostile_peers.py's.)"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import zmq

from piwheels import protocols
from piwheels.master_support.queue_guard import QueueGuard, resident_bytes
from piwheels.transport import Socket

log = logging.getLogger("piwheels.test_queue_guard")


def _queue(context: zmq.Context[Any]) -> tuple[Socket, str]:
    sock = Socket(zmq.ROUTER, protocols.slave_driver, context=context)
    sock.zsock.bind("tcp://127.0.0.1:*")  # a wildcard port: the guard rebinds the one chosen
    return sock, sock.zsock.get_string(zmq.LAST_ENDPOINT)


def test_under_its_bound_the_guard_does_nothing(
    context: zmq.Context[Any], caplog: pytest.LogCaptureFixture
) -> None:
    sock, address = _queue(context)
    peer = context.socket(zmq.DEALER)
    peer.connect(address)
    peer.send_multipart([b"", b"hello"])
    assert sock.poll(5000)
    QueueGuard(log, [sock], resident_bytes() + (1 << 30)).check()
    assert not caplog.records
    peer.close(linger=0)
    sock.close()


def test_memory_not_the_queues_is_said_once_and_the_queue_stays_open(
    context: zmq.Context[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    sock, address = _queue(context)
    monitor = sock.zsock.get_monitor_socket(zmq.EVENT_ACCEPTED)
    peer = context.socket(zmq.DEALER)
    peer.connect(address)
    assert monitor.poll(5000)  # connected
    monitor.recv_multipart()
    guard = QueueGuard(log, [sock], resident_bytes() // 2)  # this process is over it already
    guard.check()
    assert "what holds it is not theirs" in caplog.text
    guard.check()  # nothing freed by it: not again until the memory grows by half the bound
    assert len(caplog.records) == 1
    # its connection was ended, and the queue bound again where it was: the peer's connection
    # comes back by itself, and is heard
    assert monitor.poll(5000), "the peer did not connect again"
    peer.send_multipart([b"", b"hello"])
    assert sock.poll(5000)
    assert sock.zsock.get_string(zmq.LAST_ENDPOINT) == address
    monitor.close(linger=0)
    peer.close(linger=0)
    sock.close()
