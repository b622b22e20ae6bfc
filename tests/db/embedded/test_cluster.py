"""piwheels.db.embedded.cluster with a real PostgreSQL: starting, restarting, stopping, starting
again after a crash, and dropping a database that someone is still connected to."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest
from pg_processes import processes_using

from piwheels.db.embedded.cluster import EmbeddedPostgres


def test_embedded_postgres_lifecycle(pg_data_dir: Path) -> None:
    data_dir = pg_data_dir
    server = EmbeddedPostgres(data_dir, durable=False)
    dsn = server.start()
    first_pid = server.pid()
    assert first_pid is not None
    assert server.socket_dir == data_dir
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('survives restarts')")

    # Starting a running server changes nothing.
    assert server.start() == dsn
    assert server.pid() == first_pid

    held = psycopg.connect(dsn, autocommit=True)
    assert server.restart() == dsn
    assert server.pid() not in {None, first_pid}
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()

    server.stop()
    assert server.pid() is None
    assert processes_using(data_dir) == []
    server.stop()  # a second stop is harmless

    # A new instance on the same directory (a restarted master) finds the data again.
    with EmbeddedPostgres(data_dir, durable=False) as again, psycopg.connect(again.dsn()) as conn:
        assert conn.execute("SELECT value FROM kept").fetchone() == ("survives restarts",)
    assert processes_using(data_dir) == []


def test_embedded_postgres_starts_after_a_crash(pg_data_dir: Path) -> None:
    server = EmbeddedPostgres(pg_data_dir, durable=False)
    with psycopg.connect(server.start(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        # Without synchronous commit the WAL of that commit may still be in the server's memory;
        # a kill here is meant to test restarting, not losing.
        conn.execute("CHECKPOINT")
    pid = server.pid()
    assert pid is not None
    for process in [pid, *processes_using(pg_data_dir)]:
        os.kill(process, signal.SIGKILL)
    # As after a reboot: the lock file names a live process that is not PostgreSQL.
    with subprocess.Popen(["sleep", "60"]) as stranger:
        try:
            lock = pg_data_dir / "postmaster.pid"
            lines = lock.read_text().split("\n")
            lock.write_text("\n".join([str(stranger.pid), *lines[1:]]))
            assert server.pid() is None
            with psycopg.connect(server.start()) as conn:
                assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        finally:
            stranger.kill()
            server.stop()
    assert processes_using(pg_data_dir) == []


def test_drop_database_cuts_open_connections(pg_server: EmbeddedPostgres) -> None:
    dsn = pg_server.create_database("test_dropped_while_connected")
    left_open = psycopg.connect(dsn)
    pg_server.drop_database("test_dropped_while_connected")
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()
    with psycopg.connect(pg_server.dsn()) as conn:
        assert (
            conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'test_dropped_while_connected'"
            ).fetchone()
            is None
        )
