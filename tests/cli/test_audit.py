"""piw-audit against a real master and database, and an output directory damaged in every way
it claims to detect."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tool_master import FakeTerminal, write_wheel

from farm import MasterThread, make_config, rows, wait_for
from piwheels.abis import sorted_abis
from piwheels.cli import add, audit, importer
from piwheels.db.database import Database
from piwheels.master_support.config import INCOMING, MasterConfig
from piwheels.web.layout import log_path

QUEUE = (
    "SELECT v.package, v.version FROM build_queue q JOIN versions v USING (version_id) "
    "ORDER BY 1, 2"
)
HOUR_AGO = time.time() - 3600
SUMMARY = re.compile(r"(no problems|\d+ problems?:) .*checked")


class Farm:
    """A master (not following PyPI) with four published wheels: piwaudit-a 1.0, 2.0 and 3.0,
    and piwaudit-b 1.0, each imported as its own build."""

    def __init__(self, config: MasterConfig, tmp_path: Path) -> None:
        self.config = config
        self.www = config.output_path
        self.simple = self.www / "simple"
        self.wheels = tmp_path / "wheels"
        self.wheels.mkdir()
        self.master_options = ["--import-queue", config.import_queue, "--timeout", "20"]
        self.key_options = ["--key-dir", str(config.key_dir)]
        self.options = ["--dsn", config.dsn, "-o", str(self.www), *self.master_options]

    def publish(self, package: str, version: str) -> Path:
        assert add.main([package, version, *self.master_options]) == 0
        wheel = write_wheel(self.wheels, package, version, payload=os.urandom(2000))
        argv = [
            str(wheel),
            "--file-queue",
            self.config.file_queue,
            *self.key_options,
            *self.master_options,
        ]
        assert importer.main(argv) == 0
        return self.simple / package / wheel.name

    def audit(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
        """The exit status and the lines of the report (without the summary)."""
        status = audit.main([*argv, *self.options])
        out = capsys.readouterr().out.splitlines()
        return status, [line for line in out if not SUMMARY.match(line)]


@pytest.fixture
def farm(master_dsn: str, tmp_path: Path) -> Iterator[Farm]:
    db = Database(master_dsn)
    db.set_build_abis(sorted_abis(["cp39", "cp311"]))
    db.close()
    (tmp_path / "www").mkdir()
    config = make_config(master_dsn, tmp_path / "www", tmp_path, ["cp39", "cp311"])
    master = MasterThread(config, follow_pypi=False).start()
    socket = Path(config.import_queue.removeprefix("ipc://"))
    try:
        wait_for(socket.exists, timeout=20, what="Mr. Chase")
        yield Farm(config, tmp_path)
    finally:
        master.stop()


def reported(lines: list[str]) -> set[tuple[str, str]]:
    return {(line.split()[0], line.split()[1]) for line in lines}


def test_audit_finds_each_damage_and_repairs_what_it_can(farm, capsys, monkeypatch, tmp_path):
    missing = farm.publish("piwaudit-a", "1.0")
    truncated = farm.publish("piwaudit-a", "2.0")
    rewritten = farm.publish("piwaudit-a", "3.0")
    healthy = farm.publish("piwaudit-b", "1.0")
    b_build = rows(
        farm.config.dsn,
        "SELECT b.build_id FROM builds b JOIN versions v USING (version_id) "
        "WHERE v.package = 'piwaudit-b'",
    )[0][0]

    # once the master has written every page, a clean tree: exit 0
    wait_for(lambda: farm.audit(capsys, "--grace", "0", "--hashes") == (0, []), timeout=20)
    assert audit.main(["--grace", "0", *farm.options]) == 0
    assert "no problems (4 files of 2 projects checked)" in capsys.readouterr().out

    # the damage
    missing.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-10])
    content = bytearray(rewritten.read_bytes())
    content[100] ^= 0xFF
    rewritten.write_bytes(bytes(content))
    metadata = healthy.with_name(healthy.name + ".metadata")
    metadata.unlink()
    project_page = farm.www / "project" / "piwaudit-b" / "index.html"
    project_page.unlink()
    index_page = farm.simple / "piwaudit-b" / "index.json"
    index_page.unlink()
    root_page = farm.simple / "index.html"
    root_page.unlink()
    log = farm.www / log_path(b_build)
    log.unlink()
    unrecorded = write_wheel(farm.simple / "piwaudit-b", "piwaudit-b", "9.0")
    stale = farm.simple / "piwaudit-b" / f".{healthy.name}.0a1b2c3d.part"
    stale.write_bytes(b"half a wheel")
    os.utime(stale, (HOUR_AGO, HOUR_AGO))
    in_flight = farm.simple / "piwaudit-a" / ".piwaudit_a-4.0-py3-none-any.whl.ffff0000.part"
    in_flight.write_bytes(b"a transfer going on")
    # where the File Juggler writes arriving files: one a kill cut short, after this start
    cut_short = farm.www / INCOMING / f".{healthy.name}.99aa88bb.part"
    cut_short.write_bytes(b"the start of a wheel")
    os.utime(cut_short, (HOUR_AGO, HOUR_AGO))

    damage = {
        ("missing-file", str(missing)),
        ("wrong-size", str(truncated)),
        ("missing-metadata", str(metadata)),
        ("missing-page", str(project_page)),
        ("missing-page", str(index_page)),
        ("missing-page", str(root_page)),
        ("missing-log", str(log)),
        ("unrecorded-file", str(unrecorded)),
        ("stale-temp", str(stale)),
        ("stale-temp", str(cut_short)),
    }
    status, lines = farm.audit(capsys, "--grace", "1800")
    assert status == 1
    # within the grace period: the fresh transfer, the fresh wheel not on record, and the pages
    # and .metadata of builds recorded a moment ago are taken to be in flight
    assert reported(lines) == {
        ("missing-file", str(missing)),
        ("wrong-size", str(truncated)),
        ("missing-page", str(root_page)),
        ("stale-temp", str(stale)),
        ("stale-temp", str(cut_short)),
    }
    status, lines = farm.audit(capsys, "--grace", "0")
    assert status == 1
    assert reported(lines) == damage | {("stale-temp", str(in_flight))}
    assert f"wrong-size       {truncated}  ({truncated.stat().st_size} bytes," in "\n".join(lines)
    # the same size, other bytes: only hashing tells
    status, lines = farm.audit(capsys, "--grace", "0", "--hashes")
    assert reported(lines) == damage | {
        ("wrong-hash", str(rewritten)),
        ("stale-temp", str(in_flight)),
    }
    # one project only: its problems, not the root's
    status, lines = farm.audit(capsys, "--grace", "0", "piwaudit-a")
    assert reported(lines) == {
        ("missing-file", str(missing)),
        ("wrong-size", str(truncated)),
        ("stale-temp", str(in_flight)),
    }

    # the progress bar, on a terminal only
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert audit.main(["--grace", "1800", *farm.options]) == 1
    monkeypatch.undo()
    assert re.search(r"\r\x1b\[K\[#+-*\] +\d+% piwaudit-a", terminal.getvalue())
    assert terminal.getvalue().endswith("\r\x1b[K")  # cleared for the report
    capsys.readouterr()

    # repairs: not confirmed, or no master to ask: nothing is done
    monkeypatch.setattr(sys, "stdin", FakeTerminal("n\n"))
    assert farm.audit(capsys, "--grace", "0", "--repair")[0] == 2
    monkeypatch.undo()
    nowhere = ["--import-queue", f"ipc://{tmp_path}/nowhere"]
    assert audit.main(["--grace", "0", "--repair", "--yes", *farm.options, *nowhere]) == 3
    assert "no master at" in capsys.readouterr().err
    assert stale.exists()
    assert rows(farm.config.dsn, QUEUE) == []

    status, lines = farm.audit(capsys, "--grace", "0", "--hashes", "--repair", "--yes")
    assert status == 1  # what was found is still reported
    assert "removed piwaudit-a 1.0, to be built again" in lines
    assert "asked the master for the pages of piwaudit-b" in lines
    assert f"deleted {stale}" in lines
    assert f"deleted {cut_short}" in lines
    assert not cut_short.exists()
    # the versions whose wheels were lost or damaged are queued to be built again
    assert rows(farm.config.dsn, QUEUE) == [
        ("piwaudit-a", "1.0"),
        ("piwaudit-a", "2.0"),
        ("piwaudit-a", "3.0"),
    ]
    assert not truncated.exists()
    assert not rewritten.exists()
    # the pages, .metadata and log come back; only the file not on record stays, reported
    wait_for(
        lambda: (
            farm.audit(capsys, "--grace", "0", "--hashes")
            == (1, [f"unrecorded-file  {unrecorded}"])
        ),
        timeout=20,
    )
    assert metadata.exists()
    assert log.exists()
    assert "piwaudit-b" in root_page.read_text()
    assert "piwaudit-a" not in root_page.read_text()  # no file of it is left

    aside = tmp_path / "aside"
    status, lines = farm.audit(
        capsys, "--grace", "0", "--repair", "--yes", "--move-unrecorded", str(aside)
    )
    assert status == 1
    assert f"moved {unrecorded} to {aside / 'simple' / 'piwaudit-b' / unrecorded.name}" in lines
    assert farm.audit(capsys, "--grace", "0") == (0, [])


def test_audit_usage_errors(master_dsn, tmp_path, capsys):
    www = tmp_path / "www"
    www.mkdir()
    assert audit.main(["--data-dir", str(tmp_path), "-o", str(www)]) == 2
    assert "no --dsn, and no database running in" in capsys.readouterr().err
    assert audit.main(["--dsn", f"host={tmp_path} dbname=nope", "-o", str(www)]) == 2
    assert "cannot connect to the database" in capsys.readouterr().err
    assert audit.main(["--dsn", master_dsn, "-o", str(tmp_path / "nope")]) == 2
    assert "no output directory at" in capsys.readouterr().err
    assert audit.main(["--dsn", master_dsn, "-o", str(www), "--move-unrecorded", "x"]) == 2
    assert "--move-unrecorded goes with --repair" in capsys.readouterr().err
    assert audit.main(["--dsn", master_dsn, "-o", str(www), "--grace", "-1"]) == 2
    # an empty farm with an empty output directory is clean
    assert audit.main(["--dsn", master_dsn, "-o", str(www)]) == 0
    assert "no problems (0 files of 0 projects checked)" in capsys.readouterr().out
