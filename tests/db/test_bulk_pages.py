"""The pages listing every project, written by a child process from the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_queue import FAILED, built, version

from piwheels.db.database import Database
from piwheels.web import bulk


def run_bulk(kind: str, output: Path, dsn: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != bulk.DSN_VARIABLE}
    if dsn is not None:
        env[bulk.DSN_VARIABLE] = dsn
    return subprocess.run(
        [sys.executable, "-m", "piwheels.web.bulk", kind, str(output)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_root_and_search_index_list_the_projects_with_files(db: Database, tmp_path: Path) -> None:
    db.set_project("foo", "Foo", 1, "Foo <things>", "", [version("1.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    db.log_build(1, "bar", "1.0", "cp39", FAILED)
    done = run_bulk("root", tmp_path, db.dsn)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "listed 1 projects"
    root = json.loads((tmp_path / "simple" / "index.json").read_text())
    assert [p["name"] for p in root["projects"]] == ["foo"]
    assert 'href="foo/"' in (tmp_path / "simple" / "index.html").read_text()
    done = run_bulk("search", tmp_path, db.dsn)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "packages.json").read_text()) == [["foo", "Foo <things>", 1, 1]]


def test_without_a_database_it_says_so(tmp_path: Path) -> None:
    done = run_bulk("root", tmp_path, None)
    assert done.returncode == 2
    assert bulk.DSN_VARIABLE in done.stderr
    done = run_bulk("search", tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 1
    assert "cannot write the search page" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written
