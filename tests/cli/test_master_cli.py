"""piw-master and piw-init-db as an operator runs them: real processes, real PostgreSQL."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from farm import free_port, wait_for
from piwheels.cli import init_db
from piwheels.cli.master import build_parser
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import latest_version

BIN = Path(sys.executable).parent


def test_master_help_describes_every_option() -> None:
    result = subprocess.run(
        [BIN / "piw-master", "--help"], capture_output=True, text=True, check=True
    )
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in result.stdout
        if action.dest != "help":
            assert action.help, f"{action.dest} has no help"
    for documented in (
        "--dsn",
        "--output-path",
        "--pypi-simple",
        "--pypi-json",
        "--package",
        "--package-list",
        "--build-abi",
        "--slave-queue",
        "--file-queue",
        "--control-queue",
        "--status-queue",
        "--import-queue",
        "--log-file",
    ):
        assert documented in result.stdout


def test_master_runs_on_its_embedded_database_and_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "master.log"
    command = [
        BIN / "piw-master",
        "--data-dir",
        data,
        "--no-follow",
        "--build-abi",
        "cp311",
        "--build-abi",
        "cp39",
        "--slave-queue",
        f"tcp://127.0.0.1:{free_port()}",
        "--file-queue",
        f"tcp://127.0.0.1:{free_port()}",
        "--control-queue",
        f"ipc://{tmp_path}/sockets/c",
        "--status-queue",
        f"ipc://{tmp_path}/sockets/s",
        "--import-queue",
        f"ipc://{tmp_path}/sockets/i",
        "--log-file",
        log,
    ]
    master = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(
            lambda: log.exists() and "master running" in log.read_text(),
            timeout=60,
            what="the master to start",
        )
        server = EmbeddedPostgres(data / "postgres")
        assert server.is_running()
        with psycopg.connect(server.dsn()) as conn:
            abis = conn.execute("SELECT abi_tag FROM build_abis ORDER BY python_order").fetchall()
        assert abis == [("cp39",), ("cp311",)]
        master.send_signal(signal.SIGTERM)
        assert master.wait(60) == 0
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
    assert not EmbeddedPostgres(data / "postgres").is_running()
    text = log.read_text()
    # timestamps and task names on every line
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} Slave Driver +INFO +started", text, re.MULTILINE
    )
    assert "stopped" in text


def test_master_refuses_a_schema_it_does_not_match(fresh_database: str, tmp_path: Path) -> None:
    assert init_db.main(["--dsn", fresh_database]) == 0
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE configuration SET schema_version = schema_version + 1")
    started = time.monotonic()
    result = subprocess.run(
        [BIN / "piw-master", "--dsn", fresh_database, "--data-dir", tmp_path, "--no-follow"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"this piwheels needs {latest_version()}" in result.stderr
    assert time.monotonic() - started < 60
