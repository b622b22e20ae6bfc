"""The project writer child, spoken to as the Scribe does: JSON lines in and out."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from piwheels import protocols
from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.db.migrate import migrate
from piwheels.db.project_rows import ProjectVersion
from piwheels.pipes import HEADER, frame, read_message
from piwheels.records.builds import BuildResult, FileState
from piwheels.web import bulk, project_writer
from piwheels.web.layout import log_path
from pypi_index import make_wheel

APP_NAME = "piw-project-writer-test"


def as_dict(action: str, data: Any) -> dict[str, Any]:
    """A message from the writer as a dict, so the assertions read as they did in JSON."""
    if action == "DONE":
        return {"done": data.package, "new": data.new, "retry": data.retry}
    return {"level": data.level, "message": data.message}


class WriterChild:
    """``python -m piwheels.web.project_writer`` with a thread reading what it says."""

    def __init__(self, output: Path, dsn: str | None) -> None:
        env = {k: v for k, v in os.environ.items() if k != bulk.DSN_VARIABLE}
        if dsn is not None:
            env[bulk.DSN_VARIABLE] = dsn
        self.process = subprocess.Popen(
            [sys.executable, "-m", "piwheels.web.project_writer", str(output)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.said: list[Any] = []  # every message, as a dict
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while (message := read_message(self.process.stdout, protocols.page_writer)) is not None:
            self.lines.put(as_dict(*message))

    def send(self, *requests: Any) -> None:
        """Each request as the Scribe sends it, or (bytes) as a message of those bytes."""
        assert self.process.stdin is not None
        for request in requests:
            if isinstance(request, bytes):
                self.process.stdin.write(HEADER.pack(len(request)) + request)
            else:
                self.process.stdin.write(frame(protocols.page_writer, *request))
        self.process.stdin.flush()

    def until_done(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Read until *count* requests are done; return the log records read on the way."""
        records = []
        while count:
            said = self.lines.get(timeout=timeout)
            self.said.append(said)
            if "done" in said:
                count -= 1
            else:
                records.append(said)
        return records

    def finish(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = self.process.wait(30)
        time.sleep(0.1)  # the reading thread's last messages
        while not self.lines.empty():
            self.said.append(self.lines.get())
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def dsn(fresh_database: str) -> str:
    migrate(fresh_database)
    return make_conninfo(fresh_database, user="piwheels", application_name=APP_NAME)


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    database = Database(make_conninfo(dsn, application_name="the test"))
    database.set_build_abis(sorted_abis(["cp39"]))
    yield database
    database.close()


@pytest.fixture
def output(tmp_path: Path) -> Path:
    (tmp_path / "www" / "simple").mkdir(parents=True)
    return tmp_path / "www"


@pytest.fixture
def child(output: Path, dsn: str) -> Iterator[WriterChild]:
    writer = WriterChild(output, dsn)
    yield writer
    writer.kill()


def record_built_wheel(db: Database, output: Path, tmp_path: Path) -> tuple[Path, int]:
    """piwtest-pure 1.0 built for cp39 as a real wheel, put where the Scribe finds it."""
    released = datetime(2026, 1, 1, tzinfo=UTC)
    db.set_project(
        "piwtest-pure",
        "piwtest-pure",
        1,
        "a test",
        "",
        [ProjectVersion("1.0", released, None, True, False, "")],
    )
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels")
    content = wheel.read_bytes()
    state = FileState(
        wheel.name,
        len(content),
        hashlib.sha256(content).hexdigest(),
        "piwtest_pure",
        "1.0",
        "py3",
        "none",
        "any",
        frozenset(),
        None,
    )
    build_id = db.log_build(
        1,
        "piwtest-pure",
        "1.0",
        "cp39",
        BuildResult(True, timedelta(seconds=5), "the build's output", [state]),
    )
    published = output / "simple" / "piwtest-pure" / wheel.name
    published.parent.mkdir(parents=True)
    published.write_bytes(content)
    return published, build_id


def messages(records: list[dict[str, Any]], level: int) -> list[str]:
    return [r["message"] for r in records if r["level"] == level]


def test_requests_are_written_and_each_is_done(
    child: WriterChild, db: Database, output: Path, tmp_path: Path
) -> None:
    wheel, build_id = record_built_wheel(db, output, tmp_path)
    child.send(("BOTH", "piwtest-pure"), ("PROJECT", "no-such-project"), ("BOTH", "piwtest-pure"))
    records = child.until_done(3)
    done = [said for said in child.said if "done" in said]
    assert done == [
        {"done": "piwtest-pure", "new": True, "retry": False},  # its first file: in the root
        {"done": "no-such-project", "new": False, "retry": False},
        {"done": "piwtest-pure", "new": False, "retry": False},  # listed already
    ]
    assert messages(records, logging.INFO) == ["wrote the pages of piwtest-pure"] * 2
    assert messages(records, logging.WARNING) == [
        "no such project 'no-such-project': nothing written"
    ]
    assert child.finish() == 0
    index = json.loads((output / "simple" / "piwtest-pure" / "index.json").read_text())
    assert [f["filename"] for f in index["files"]] == [wheel.name]
    metadata = wheel.with_name(wheel.name + ".metadata")
    with zipfile.ZipFile(wheel) as zf:
        assert metadata.read_bytes() == zf.read("piwtest_pure-1.0.dist-info/METADATA")
    assert (output / "project" / "piwtest-pure" / "index.html").exists()
    assert (output / "project" / "piwtest-pure" / "json" / "index.json").exists()
    assert (output / log_path(build_id)).exists()
    assert not list(output.rglob(".*.tmp"))


def test_a_bad_line_is_logged_and_skipped(
    child: WriterChild, db: Database, output: Path, tmp_path: Path
) -> None:
    record_built_wheel(db, output, tmp_path)
    child.send(
        b"not cbor",
        cbor2.dumps(["WRITE", "piwtest-pure"]),
        cbor2.dumps({"BOTH": 1}),
        ("PROJECT", "piwtest-pure"),
    )
    records = child.until_done(1)
    errors = messages(records, logging.ERROR)
    assert len(errors) == 3
    assert all(e.startswith("bad request") for e in errors)
    assert "WRITE" in errors[1]
    assert messages(records, logging.INFO) == ["wrote the pages of piwtest-pure"]
    assert child.finish() == 0


def test_a_lost_wheel_is_one_line_and_the_pages_are_still_written(
    child: WriterChild, db: Database, output: Path, tmp_path: Path
) -> None:
    wheel, _ = record_built_wheel(db, output, tmp_path)
    wheel.unlink()
    child.send(("BOTH", "piwtest-pure"))
    records = child.until_done(1)
    [error] = messages(records, logging.ERROR)
    assert error.startswith("1 of piwtest-pure's files are recorded but missing from ")
    assert wheel.name in error
    assert messages(records, logging.INFO) == ["wrote the pages of piwtest-pure"]
    assert child.finish() == 0


def test_a_broken_connection_costs_one_request(
    child: WriterChild, db: Database, output: Path, tmp_path: Path, fresh_database: str
) -> None:
    record_built_wheel(db, output, tmp_path)
    child.send(("PROJECT", "piwtest-pure"))
    child.until_done(1)
    with psycopg.connect(fresh_database, autocommit=True) as admin:
        [(killed,)] = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (APP_NAME,),
        ).fetchall()
    assert killed == 1
    child.send(("PROJECT", "piwtest-pure"), ("PROJECT", "piwtest-pure"))
    records = child.until_done(2)
    [error] = messages(records, logging.ERROR)
    assert error.startswith("cannot write the pages of piwtest-pure (asked again later): ")
    assert [said.get("retry") for said in child.said if "done" in said][-2:] == [True, False]
    assert messages(records, logging.INFO) == ["wrote the pages of piwtest-pure"]
    assert child.finish() == 0


def test_without_a_database_it_says_so(output: Path) -> None:
    child = WriterChild(output, None)
    try:
        assert child.finish() == 2
    finally:
        child.kill()
    [said] = child.said
    assert said["level"] == logging.ERROR
    assert bulk.DSN_VARIABLE in said["message"]


class FailingWriter(project_writer.ProjectWriter):
    def write(self, package: str, with_index: bool) -> bool:
        raise RuntimeError(f"no pages for {package} today")


def test_a_failure_is_logged_with_its_traceback_and_the_request_still_done(
    tmp_path: Path,
) -> None:
    out = io.BytesIO()
    handler = project_writer.MessageHandler(out)
    project_writer.log.addHandler(handler)
    try:
        writer = FailingWriter(tmp_path, Database("unused"), project_writer.log)
        requests = io.BytesIO(frame(protocols.page_writer, "BOTH", "foo"))
        project_writer.serve(writer, requests, out)
    finally:
        project_writer.log.removeHandler(handler)
    out.seek(0)
    logged, done = [
        as_dict(*message)
        for message in iter(lambda: read_message(out, protocols.page_writer), None)
    ]
    assert logged["level"] == logging.ERROR
    assert logged["message"].startswith("cannot write the pages of foo\nTraceback")
    assert "RuntimeError: no pages for foo today" in logged["message"]
    assert done == {"done": "foo", "new": False, "retry": False}
