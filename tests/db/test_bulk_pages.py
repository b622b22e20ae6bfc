"""The pages listing every project, written by a child process from the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC
from pathlib import Path

from test_queue import FAILED, NOW, built, version

from piwheels.db.database import Database
from piwheels.web import bulk
from piwheels.web.sitemap import NAMESPACE


def run_bulk(
    kind: str, output: Path, dsn: str | None, *options: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != bulk.DSN_VARIABLE}
    if dsn is not None:
        env[bulk.DSN_VARIABLE] = dsn
    return subprocess.run(
        [sys.executable, "-m", "piwheels.web.bulk", kind, str(output), *options],
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


def test_the_sitemap_lists_every_project_with_its_last_change(db: Database, tmp_path: Path) -> None:
    db.set_project(
        "foo", "Foo", 1, "", "", [version("1.0", days_ago=3), version("0.9", days_ago=9)]
    )
    db.set_project("bar", "bar", 1, "", "", [version("1.0", days_ago=2)])
    db.set_project("new", "new", 1, "", "", [version("1.0", days_ago=None)])
    db.set_project("gone", "gone", 1, "", "", [version("1.0")])
    db.remove_project("gone")  # its page says so, but is no page to send anyone to
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    db.log_build(1, "bar", "1.0", "cp39", FAILED)
    (built_at,) = db.conn.execute("SELECT built_at FROM builds WHERE build_id = 1").fetchone()
    done = run_bulk("sitemap", tmp_path, db.dsn, "--public-url", "https://wheels.example/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "listed 6 URLs"
    ns = {"s": NAMESPACE}
    listed = [
        (url.findtext("s:loc", namespaces=ns), url.findtext("s:lastmod", namespaces=ns))
        for url in ET.parse(tmp_path / "sitemap.xml").getroot().findall("s:url", ns)
    ]
    site = "https://wheels.example"
    assert listed == [
        (f"{site}/", None),
        (f"{site}/search/", None),
        (f"{site}/faq/", None),
        # a failed build changes the page too; the newest of the builds and the releases
        (f"{site}/project/bar/", built_at_of(db, "bar")),
        (f"{site}/project/foo/", built_at.astimezone(UTC).isoformat(timespec="seconds")),
        (f"{site}/project/new/", None),  # nothing built, and PyPI gave no release time
    ]
    assert built_at_of(db, "bar") > NOW.isoformat()


def built_at_of(db: Database, package: str) -> str:
    row = db.conn.execute(
        "SELECT max(b.built_at) FROM builds b JOIN versions v USING (version_id) "
        "WHERE v.package = %s",
        (package,),
    ).fetchone()
    assert row is not None
    return str(row[0].astimezone(UTC).isoformat(timespec="seconds"))


def test_without_a_database_it_says_so(tmp_path: Path) -> None:
    done = run_bulk("root", tmp_path, None)
    assert done.returncode == 2
    assert bulk.DSN_VARIABLE in done.stderr
    done = run_bulk("search", tmp_path, "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode == 1
    assert "cannot write the search page" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written
