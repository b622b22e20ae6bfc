"""Nothing a peer sends may stop, stall or bloat the master, or put a file in the index that
it did not verify: one test per way a fuzz campaign against a running master found (#13).

Each sends its message over a real socket to a real master, then checks that the master still
answers and that what it serves is what its database lists.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cbor2
import psycopg
import pytest
import zmq

from farm import (
    MasterThread,
    ScriptedSlave,
    build_result,
    builder_keys,
    configure,
    file_state,
    free_port,
    rows,
    stats,
    wait_for,
)
from piwheels import protocols
from piwheels.builder_keys import ClientKeys
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.slaves import file_problem
from piwheels.records.builds import Dependency
from piwheels.transport import Socket
from pypi_index import LocalPyPI

WHEEL = "piwtest_pure-1.0-py3-none-any.whl"
CONTENT = os.urandom(100_000)
HUGE = 10**5000  # Python refuses str() of an int past 4,300 digits


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"], packages=["piwtest-pure"])


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    yield running
    running.stop()


@pytest.fixture
def slave(config: MasterConfig, master: MasterThread) -> Iterator[ScriptedSlave]:
    scripted = ScriptedSlave(config, abi="cp39")
    yield scripted
    scripted.close()


def raw_peer(
    context: zmq.Context[Any], kind: int, address: str, builder_of: MasterConfig | None = None
) -> zmq.Socket[Any]:
    """A hostile peer; on a builder queue (*builder_of* a master), with a key the master
    trusts, a hostile builder's: only such a peer reaches the builder queues' decoders (a
    stranger's handshake fails; see test_builder_trust.py)."""
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    keys = builder_keys(builder_of, "hostile") if builder_of is not None else None
    if keys is not None:
        keys.secure(sock)
    sock.connect(address)
    return sock


def still_serving(config: MasterConfig, master: MasterThread) -> None:
    """The master is running and answers a well-behaved slave."""
    assert master.thread.is_alive(), "the master stopped"
    assert master.exit_status is None
    other = ScriptedSlave(config, abi="cp39", label="well-behaved")
    try:
        other.hello()
        assert other.idle()[0] in ("BUILD", "SLEEP")
    finally:
        other.close()


def served_unlisted(config: MasterConfig) -> set[str]:
    """Wheels under simple/ that the database does not list."""
    on_disk = {p.name for p in (config.output_path / "simple").rglob("*.whl")}
    listed = {name for (name,) in rows(config.dsn, "SELECT filename FROM files")}
    return on_disk - listed


def builds(dsn: str) -> list[tuple[Any, ...]]:
    return rows(
        dsn,
        "SELECT b.abi_tag, b.status, o.output FROM builds b JOIN output o USING (build_id) "
        "ORDER BY b.build_id",
    )


# -- 1. a big integer stops any task, no HELLO needed ---------------------------------------


@pytest.mark.parametrize(
    "message",
    [HUGE, ["HELLO", HUGE], ["IDLE", *[HUGE] * 7], ["BUILT", True, HUGE, "log", []]],
    ids=["bare", "hello", "idle", "built"],
)
def test_a_big_integer_to_the_slave_queue(
    config: MasterConfig,
    master: MasterThread,
    context: zmq.Context[Any],
    message: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = raw_peer(context, zmq.REQ, config.slave_queue, config)
    peer.send(cbor2.dumps(message))
    assert not peer.poll(500)  # refused: no answer
    assert "refused a message from an unknown slave at 127.0.0.1" in caplog.text
    still_serving(config, master)


def test_a_big_integer_to_the_file_queue(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave, context: zmq.Context[Any]
) -> None:
    for message in (HUGE, ["HELLO", HUGE], ["CHUNK", HUGE, b"x"]):
        peer = raw_peer(context, zmq.DEALER, config.file_queue, config)
        peer.send_multipart([b"", cbor2.dumps(message)])
    # the File Juggler still takes a slave's file
    slave.hello()
    slave.wait_for_build()
    assert slave.request("BUILT", build_result(file_state(WHEEL, CONTENT)))[0] == "SEND"
    assert slave.send_file(CONTENT) == "DONE"
    assert slave.request("SENT")[0] == "DONE"
    assert rows(config.dsn, "SELECT filename FROM files") == [(WHEEL,)]


def test_a_big_integer_to_the_import_queue(
    config: MasterConfig, master: MasterThread, context: zmq.Context[Any]
) -> None:
    tool = raw_peer(context, zmq.REQ, config.import_queue)
    tool.send(cbor2.dumps(["RETRY", "piwtest-pure", HUGE, None]))
    assert tool.poll(10_000)
    action = cbor2.loads(tool.recv())
    assert action[0] == "ERROR" and "a CBOR tag no message carries" in action[1]
    still_serving(config, master)


def test_a_big_integer_to_the_control_queue(
    config: MasterConfig, master: MasterThread, context: zmq.Context[Any]
) -> None:
    control = raw_peer(context, zmq.PUSH, config.control_queue)
    control.send(cbor2.dumps(["SLEEP", HUGE]))
    control.send(cbor2.dumps(HUGE))
    time.sleep(0.5)
    still_serving(config, master)


# -- 2. a load or temperature float() cannot take ------------------------------------------


def test_a_load_average_beyond_a_float(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave
) -> None:
    slave.hello()
    bad = stats()._replace(load_avg=2**1100)  # travels as a CBOR bignum
    slave.send_raw(cbor2.dumps(["IDLE", *bad]))
    assert not slave.sock.poll(1000)  # refused, and the slave forgotten
    still_serving(config, master)


# -- 3. a wheel's name that fits no file name ----------------------------------------------


def test_a_wheel_name_too_long_for_the_disk(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave
) -> None:
    slave.hello()
    slave.wait_for_build()
    name = f"piwtest_pure-1.0-py3-none-{'x' * 975}.whl"  # 1,000 characters
    state = file_state(name, CONTENT)
    assert slave.request("BUILT", build_result(state))[0] == "DONE"
    [(_, status, output)] = builds(config.dsn)
    assert status is False
    assert "longer than 240 bytes" in output
    assert master.thread.is_alive()
    assert not served_unlisted(config)


# -- 4. an Oracle's error quoting a long name ----------------------------------------------


def test_a_long_package_name_to_remove(
    config: MasterConfig, master: MasterThread, context: zmq.Context[Any]
) -> None:
    tool = Socket(zmq.REQ, reversed(protocols.mr_chase), context=context)
    tool.connect(config.import_queue)
    tool.send("REMOVE", ("x" * 1024, "1.0", ""))
    assert tool.poll(10_000)
    action, reason = tool.recv()
    assert action == "ERROR" and len(reason) <= 1024
    tool.close()
    still_serving(config, master)


# -- 5. a failed build's files --------------------------------------------------------------


def test_a_failed_build_lists_no_files(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave
) -> None:
    slave.hello()
    slave.wait_for_build()
    state = file_state(WHEEL, CONTENT)
    assert slave.request("BUILT", build_result(state, status=False))[0] == "DONE"
    [(_, status, output)] = builds(config.dsn)
    assert status is False
    assert "the build failed" in output
    assert rows(config.dsn, "SELECT count(*) FROM files") == [(0,)]
    page = config.output_path / "project" / "piwtest-pure" / "json" / "index.json"
    wait_for(page.exists, what="the project's JSON")
    assert "piwtest_pure-1.0" not in page.read_text()
    assert not list((config.output_path / "simple").rglob("*.whl"))


# -- 6. a rogue's bytes left in the output ---------------------------------------------------


def test_a_file_the_database_cannot_record_is_not_fetched(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave
) -> None:
    slave.hello()
    slave.wait_for_build()
    state = file_state(WHEEL, CONTENT, dependencies=frozenset({Dependency("evil", "x")}))
    assert slave.request("BUILT", build_result(state))[0] == "DONE"  # not SEND
    [(_, status, output)] = builds(config.dsn)
    assert status is False and "'evil', not apt, pip or library" in output
    assert not list((config.output_path / "simple").rglob("*.whl"))


def test_a_build_not_recorded_leaves_no_file(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave, fresh_database: str
) -> None:
    slave.hello()
    slave.wait_for_build()
    assert slave.request("BUILT", build_result(file_state(WHEEL, CONTENT)))[0] == "SEND"
    # the version goes away while its file arrives: the build can no longer be recorded
    with psycopg.connect(fresh_database) as conn:
        conn.execute("DELETE FROM versions WHERE package = 'piwtest-pure'")
    assert slave.send_file(CONTENT) == "DONE"
    assert slave.request("SENT")[0] == "DONE"
    assert rows(config.dsn, "SELECT count(*) FROM files") == [(0,)]
    wait_for(lambda: not served_unlisted(config), timeout=10, what="the unrecorded file deleted")


# -- 7. the tag check is linear ---------------------------------------------------------------


def test_tags_of_many_parts_are_refused_at_once(
    config: MasterConfig, master: MasterThread, slave: ScriptedSlave
) -> None:
    slave.hello()
    slave.wait_for_build()
    parts = ".".join(["a"] * 500)  # 500 x 500 x 500 combinations if multiplied out
    state = file_state(WHEEL, CONTENT, py_version_tag=parts, abi_tag=parts, platform_tag=parts)
    assert slave.request("BUILT", build_result(state), timeout=30)[0] == "DONE"
    [(_, status, output)] = builds(config.dsn)
    assert status is False and "tags do not match" in output
    many_dots = file_state("piwtest_pure-1.0-py3-none-" + ".".join(["x"] * 30) + ".whl", CONTENT)
    assert "more than 20 dots" in (file_problem("piwtest-pure", "1.0", many_dots) or "")
    still_serving(config, master)


# -- 8. a transfer taken over by a stranger --------------------------------------------------


def _stranger_says_hello(
    context: zmq.Context[Any],
    endpoint: str,
    slave_id: int,
    routing_id: bytes | None = None,
    keys: ClientKeys | None = None,
) -> str:
    stranger = Socket(zmq.DEALER, reversed(protocols.file_juggler), context=context)
    if routing_id is not None:
        stranger.zsock.setsockopt(zmq.ROUTING_ID, routing_id)
    if keys is not None:
        keys.secure(stranger.zsock)
    stranger.connect(endpoint)
    stranger.send("HELLO", slave_id)
    try:
        return stranger.recv()[0] if stranger.poll(5000) else "TIMEOUT"
    finally:
        stranger.close()


@pytest.mark.parametrize("ours", [True, False], ids=["our-slave", "original-slave"])
def test_a_stranger_cannot_take_over_a_transfer(
    config: MasterConfig,
    master: MasterThread,
    context: zmq.Context[Any],
    ours: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slave = ScriptedSlave(config, abi="cp39", routing_id=b"\x07secret-id-of-16" if ours else None)
    try:
        slave_id = slave.hello()
        slave.wait_for_build()
        assert slave.request("BUILT", build_result(file_state(WHEEL, CONTENT)))[0] == "SEND"
        if ours:  # from the same host, yet not the slave's connection
            endpoint = config.file_queue
        else:  # the original slaves' connections can only be told apart by host
            endpoint = config.file_queue.replace("tcp://", "tcp://127.0.0.2:0;")
        # with no key, a stranger does not even reach the File Juggler
        assert _stranger_says_hello(context, endpoint, slave_id) == "TIMEOUT"
        # another builder the master trusts is refused: not that slave's key (nor connection)
        other = builder_keys(config, "another builder")
        assert _stranger_says_hello(context, endpoint, slave_id, keys=other) == "DONE"
        if ours:  # even knowing the slave's secret routing id
            stolen = slave.routing_id
            assert _stranger_says_hello(context, endpoint, slave_id, stolen, other) == "DONE"
        assert "not that slave's connection" in caplog.text
        assert slave.send_file(CONTENT) == "DONE"
        assert slave.request("SENT")[0] == "DONE"
    finally:
        slave.close()
    assert rows(config.dsn, "SELECT filename FROM files") == [(WHEEL,)]


# -- 9. is covered by test_hostile_slave.test_published_file_is_never_replaced --------------

# -- 10. memory ------------------------------------------------------------------------------


def _rss() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def test_a_message_of_millions_of_items_is_refused_before_it_is_built(
    config: MasterConfig, master: MasterThread, context: zmq.Context[Any]
) -> None:
    count = 8_000_000
    message = b"\x9a" + count.to_bytes(4, "big") + b"\x80" * count  # [[], [], ...]
    before = _rss()
    peer = raw_peer(context, zmq.REQ, config.slave_queue, config)
    peer.send(message)
    time.sleep(1)
    still_serving(config, master)
    # decoded, 8 million lists took ~600 MB; refused first, the message itself is 8 MB
    assert _rss() - before < 200 << 20


def test_frames_beyond_a_message_are_not_kept(
    config: MasterConfig, master: MasterThread, context: zmq.Context[Any], caplog: Any
) -> None:
    caplog.set_level(logging.ERROR)
    peer = raw_peer(context, zmq.DEALER, config.slave_queue, config)
    peer.send_multipart([b"", cbor2.dumps("IDLE"), *[b"x" * (1 << 20)] * 8])
    wait_for(lambda: "malformed envelope (11 frames)" in caplog.text, timeout=10)
    still_serving(config, master)


# ZMTP 3.0 by hand (RFC 23): a greeting for the NULL mechanism, READY as a DEALER, then frames
ZMTP_GREETING = b"\xff" + bytes(8) + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32)
ZMTP_READY = b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06DEALER"


def _connected(host: str, port: int) -> socket.socket | None:
    try:
        return socket.create_connection((host, port), timeout=10)
    except ConnectionRefusedError:
        return None


def _frames_sent(peer: socket.socket, frame: bytes, *, most: int) -> int:
    """How many times *frame* went out before the other end hung up (at most *most*)."""
    for sent in range(most):
        try:
            peer.sendall(frame)
        except OSError:
            return sent
    return most


def test_a_message_never_ended_is_dropped_with_its_connection(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, caplog: Any
) -> None:
    """libzmq keeps a message's frames until its last: a peer speaking ZMTP by hand (on the
    plain queue an operator opened for the original slaves) sends 1 MB frames marked "more"
    for ever. Past --max-memory the master ends the connections of its builder queues."""
    caplog.set_level(logging.ERROR)
    insecure = f"tcp://127.0.0.1:{free_port()}"
    limit = _rss() + (150 << 20)  # this process is the master's
    config = configure(
        master_dsn,
        tmp_path,
        pypi_index,
        ["cp39"],
        packages=["piwtest-pure"],
        insecure_slave_queue=insecure,
        max_memory=limit,
    )
    master = MasterThread(config).start()
    try:
        host, port = insecure.removeprefix("tcp://").rsplit(":", 1)
        peer = wait_for(lambda: _connected(host, int(port)), what="the plain queue open")
        peer.sendall(ZMTP_GREETING + ZMTP_READY)
        frame = b"\x03" + (1 << 20).to_bytes(8, "big") + os.urandom(1 << 20)
        assert _frames_sent(peer, frame, most=1000) < 1000  # the master ended the connection
        peer.close()
        wait_for(lambda: "ended every connection on " + insecure in caplog.text, timeout=10)
        wait_for(lambda: _rss() < limit, timeout=10, what="the master's memory back under")
        still_serving(config, master)
    finally:
        master.stop()


# A subscriber of its own process: libzmq's SUB side keeps the subscription in a tree as well,
# whose recursive teardown overflows the stack of the process that made it.
HOSTILE_SUBSCRIBER = """
import os, sys, time, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.connect(sys.argv[1])
sock.setsockopt(zmq.SUBSCRIBE, b"A" * (4 << 20))
time.sleep(2)
os._exit(0)
"""


def test_a_huge_subscription_to_the_status_queue_is_refused(
    config: MasterConfig,
    master: MasterThread,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = _rss()
    subprocess.run(
        [sys.executable, "-c", HOSTILE_SUBSCRIBER, config.status_queue], check=True, timeout=60
    )
    monitor = context.socket(zmq.SUB)
    monitor.connect(config.status_queue)
    monitor.setsockopt(zmq.SUBSCRIBE, b"")
    control = raw_peer(context, zmq.PUSH, config.control_queue)
    time.sleep(0.5)
    control.send(cbor2.dumps("HELLO"))  # the master replays its state to every subscriber
    assert monitor.poll(10_000), "a monitor's subscription was not taken"
    assert _rss() - before < 100 << 20  # ~200 MB when libzmq kept it
    still_serving(config, master)


# 3,000 short subscriptions, each new (libzmq sends a repeated one only once), within libzmq's
# queue of 1,000 messages for a peer.
RANDOM_SUBSCRIBER = """
import random, sys, time, zmq
sock = zmq.Context().socket(zmq.XSUB)
sock.connect(sys.argv[1])
time.sleep(0.5)
rnd = random.Random(13)
for n in range(3000):
    sock.send(b"\\x01%d:" % n + rnd.randbytes(rnd.randint(1, 58)))
    if n % 500 == 499:
        time.sleep(0.5)
time.sleep(1)
"""


def test_subscriptions_no_status_message_can_match_are_refused(
    config: MasterConfig,
    master: MasterThread,
    context: zmq.Context[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The campaign's 12,000 short random subscriptions held ~60 MB after their subscriber
    left: libzmq keeps the tree it stores them in."""
    before = _rss()
    # from a process of its own: the sending XSUB keeps every subscription in a tree too
    subprocess.run(
        [sys.executable, "-c", RANDOM_SUBSCRIBER, config.status_queue], check=True, timeout=60
    )
    wait_for(lambda: caplog.text.count("no message can match") >= 3000, timeout=30)
    assert _rss() - before < 10 << 20  # ~40 MB when they were taken
    kind = context.socket(zmq.SUB)  # one kind of message only: a topic that can match
    kind.connect(config.status_queue)
    kind.setsockopt(zmq.SUBSCRIBE, cbor2.dumps(["MASTER", None, None, None])[:8])
    control = raw_peer(context, zmq.PUSH, config.control_queue)
    time.sleep(0.5)
    control.send(cbor2.dumps("HELLO"))
    assert kind.poll(10_000), "a monitor's subscription to MASTER was not taken"
    assert cbor2.loads(kind.recv())[0] == "MASTER"
    still_serving(config, master)


def test_a_slave_that_dies_while_sending_gives_its_build_back(
    config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """#21: killed mid-transfer, a slave held its build until --slave-timeout (30 s here).
    Now it is given back (#15): another slave builds it once --give-back-delay has passed."""
    caplog.set_level(logging.INFO, logger="piwheels")
    config.busy_timeout = timedelta(seconds=2)
    config.give_back_delay = timedelta(seconds=1)
    master = MasterThread(config).start()
    try:
        dead = ScriptedSlave(config, abi="cp39", label="dies-while-sending")
        try:
            dead.hello()
            dead.wait_for_build()
            assert dead.request("BUILT", build_result(file_state(WHEEL, CONTENT)))[0] == "SEND"
        finally:
            dead.close()  # and never a chunk
        wait_for(lambda: "sending, yet no chunk for 0:00:02" in caplog.text, timeout=20)
        other = ScriptedSlave(config, abi="cp39")
        try:
            other.hello()
            assert other.wait_for_build() == ("piwtest-pure", "1.0")
        finally:
            other.close()
    finally:
        master.stop()
    assert "piwtest-pure 1.0 for cp39 is given back (slave lost)" in caplog.text
