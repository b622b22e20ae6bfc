"""The Oracle: each request carried out in a transaction and answered, a failing one answered
with its kind of error, the database's restart survived, and a big request's buffers given
back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import MasterThread, SlaveProcess, make_config, rows, wait_for
from master.slow_farm import SLOW_BUILDS, slow_farm
from master.tasks_alone import TasksAlone, farm_alone
from piwheels import protocols
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.master.seraph import Seraph
from piwheels.master.the_oracle import BIG_REQUEST, TheOracle
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.message_codec import decode, encode
from piwheels.protocols.messages import BuildReport
from piwheels.records.builds import BuildResult
from pypi_index import LocalPyPI


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return slow_farm(master_dsn, tmp_path, pypi_index)


@pytest.fixture
def client(master_dsn: str, tmp_path: Path, context: zmq.Context[Any]) -> Iterator[DbClient]:
    """A client of one Oracle behind Seraph, outside a master."""
    alone_config = farm_alone(master_dsn, tmp_path, ["cp39", "cp311"])
    with TasksAlone(alone_config, context) as tasks:
        tasks.start(Seraph(alone_config, context), TheOracle(alone_config, context))
        client = DbClient(alone_config.oracle_queue, context, timeout=10)
        yield client
        client.close()


def test_each_request_is_answered_from_the_database(client: DbClient) -> None:
    assert [abi.abi_tag for abi in client.get_build_abis()] == ["cp39", "cp311"]
    client.set_pypi_serial(42)
    assert client.get_pypi_serial() == 42
    client.add_by_hand("foo", "1.0", "")
    assert client.package_exists("foo") and client.version_exists("foo", "1.0")
    assert client.get_queue(10).heads == {"cp39": [("foo", "1.0")], "cp311": []}


def test_a_failing_request_is_answered_with_its_kind_of_error(
    client: DbClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="piwheels")
    with pytest.raises(DatabaseError, match="no such package: nope") as missing:
        client.set_skip("nope", None, "never")
    assert missing.value.kind == "not-found"
    with pytest.raises(DatabaseError, match="ADDBYHAND failed: value too long") as refused:
        client.add_by_hand("x" * 300, None, "")
    assert refused.value.kind == "refused"
    with pytest.raises(DatabaseError, match=r"RETRYCAUSE failed: .*no such cause") as failed:
        client.retry_cause("broken", None)
    assert failed.value.kind == "failed"
    # and the Oracle goes on answering
    assert client.get_pypi_serial() == 0
    assert "SETSKIP: no such package: nope" in caplog.text


def test_a_request_it_cannot_read_is_answered_malformed(
    client: DbClient, context: zmq.Context[Any], tmp_path: Path
) -> None:
    asker = context.socket(zmq.REQ)
    try:
        asker.connect(client.address)
        asker.send(b"\xff not a request")
        assert asker.poll(10_000)
        reply = asker.recv()
    finally:
        asker.close(linger=0)
    assert b"malformed" in reply
    assert client.get_pypi_serial() == 0


@pytest.mark.slow
def test_database_restarted(
    config: MasterConfig,
    pg_server: EmbeddedPostgres,
    pypi_index: LocalPyPI,
    python311: Path,
    tmp_path: Path,
) -> None:
    config.packages = ["piwtest-slow", "piwtest-pure"]
    master = MasterThread(config).start()
    slave = SlaveProcess(config, python311, tmp_path)
    try:
        wait_for(lambda: rows(config.dsn, SLOW_BUILDS), timeout=120, what="the first build")
        before = rows(config.dsn, "SELECT build_id, status FROM builds ORDER BY 1")
        pg_server.restart()
        # the master reconnects: a release that appears afterwards is recorded and built
        pypi_index.add_version("piwtest-pure", "2.0")
        done = (
            "SELECT count(*) FROM builds b JOIN versions v USING (version_id) "
            "WHERE v.package = 'piwtest-pure' AND v.version = '2.0'"
        )
        wait_for(lambda: rows(config.dsn, done) == [(1,)], timeout=120, what="the later build")
    finally:
        slave.stop()
        status = master.stop()
    after = rows(config.dsn, "SELECT build_id, status FROM builds ORDER BY 1")
    assert after[: len(before)] == before  # nothing already recorded was lost
    assert status == 0


def test_a_big_request_is_followed_by_a_new_connection(master_dsn: str, tmp_path: Path) -> None:
    config = make_config(master_dsn, tmp_path, tmp_path, ["cp39"])
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    seraph = context.socket(zmq.ROUTER)  # as Seraph's back socket: the Oracle says READY to it
    seraph.bind(config.oracle_workers_queue)
    oracle = TheOracle(config, context)
    try:
        oracle.once()
        worker = seraph.recv_multipart()[0]

        def ask(action: str, data: Any) -> str:
            request = encode(reversed(protocols.oracle), action, data)
            seraph.send_multipart([worker, b"", b"client", b"", request])
            oracle.poll(10.0)
            action, _ = decode(reversed(protocols.oracle), seraph.recv_multipart()[-1])
            return str(action)

        assert ask("PKGEXISTS", "small") == "OK"
        first = oracle.db.conn
        assert ask("PKGEXISTS", "small") == "OK"
        assert oracle.db.conn is first, "a small request keeps the connection"
        # A build log larger than BIG_REQUEST (of a project the database does not know, so it is
        # refused), sent to PostgreSQL in the query: libpq keeps a buffer that large.
        log = "a line of a long build log\n" * (BIG_REQUEST // 20)
        result = BuildResult(False, timedelta(seconds=1), log, [])
        ask("LOGBUILD", BuildReport(1, "no-such-project", "1.0", "cp39", result))
        assert first.closed
        assert ask("PKGEXISTS", "small") == "OK"  # the next request connects again
        assert oracle.db.conn is not first
    finally:
        oracle.close()
        seraph.close(linger=0)
        context.term()
