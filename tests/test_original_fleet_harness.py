"""The harness of issue #18 works before our master speaks the original's dialect: a real original
``piw-slave`` (tests/original_fleet.py), run as an unprivileged user, greets a bare ROUTER socket
bound where it expects its master."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import cbor2
import pytest
import zmq

from original_fleet import SLAVE_PORT, OriginalSlave, loopback_host, original_slave_venv


def original_tags(tag: cbor2.CBORTag, immutable: bool) -> Any:
    # The original's codec sends a timedelta as tag 2001: [days, seconds, microseconds]. (cbor2 6
    # calls a tag hook with the tag first; the original's cbor2 5 passed its decoder first.)
    if tag.tag == 2001:
        days, seconds, microseconds = tag.value
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    return tag


def os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    with open("/etc/os-release") as release:
        for line in release:
            key, sep, value = line.strip().partition("=")
            if sep:
                fields[key] = value.strip("\"'")
    return fields


@pytest.fixture
def router(context: zmq.Context[Any]) -> Iterator[tuple[str, zmq.Socket[Any]]]:
    """A ROUTER on the original's slave port of a loopback address of the test's own."""
    original_slave_venv()  # skip before binding anything where the original cannot run
    host = loopback_host()
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    sock.bind(f"tcp://{host}:{SLAVE_PORT}")
    yield host, sock
    sock.close()


def test_the_original_slave_says_hello_as_an_unprivileged_user(
    router: tuple[str, zmq.Socket[Any]],
) -> None:
    host, sock = router
    with OriginalSlave(host, label="harness", timeout=timedelta(minutes=7)) as slave:
        # It starts in about a second (imports, then python-apt's cache on its first build only)
        if not sock.poll(30_000):
            pytest.fail(f"no HELLO within 30 s\n{slave.output()}\n{slave.log()}")
        frames = sock.recv_multipart()
        assert slave.pid > 0
        uids = slave.uids()
        assert set(uids) == {slave.user.uid}
        if os.geteuid() == 0:
            assert slave.user.uid != 0

        # a REQ socket's message: its identity, an empty delimiter, then the CBOR
        assert len(frames) == 3, frames
        identity, delimiter, payload = frames
        assert identity
        assert delimiter == b""
        message = cbor2.loads(payload, tag_hook=original_tags)
        assert isinstance(message, list)
        action, data = message
        assert action == "HELLO"
        assert len(data) == 10, data
        (
            build_timeout,
            master_timeout,
            py_tag,
            abi_tag,
            platform_tag,
            label,
            os_name,
            os_version,
            board_revision,
            board_serial,
        ) = data
        assert build_timeout == timedelta(minutes=7)
        # how long it waits for any answer before it drops the connection and says HELLO again
        assert master_timeout == timedelta(minutes=5)
        # packaging's interpreter_version (no "cp"), and the ABI Debian's python3 builds for
        assert py_tag.isdigit(), py_tag
        assert abi_tag == f"cp{py_tag}"
        assert platform_tag == f"linux_{platform.machine()}"
        assert label == "harness"
        release = os_release()
        assert os_name == release.get("NAME", "Linux")
        assert os_version == release.get("VERSION", "")
        # not a Raspberry Pi: no device tree to read them from
        assert (board_revision, board_serial) == ("unknown", "unknown")

        # Stopped mid-request, it fails to say BYE (a REQ socket cannot send twice) and exits 1.
        assert slave.stop() is not None
        assert not slave.group_alive()
    log = slave.log()
    assert "PiWheels Slave version 0.23" in log
    assert "Shutting down on SIGTERM" in log  # not killed: it heard the SIGTERM
