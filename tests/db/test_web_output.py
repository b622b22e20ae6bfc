"""What the web output asks of the database: which pages to write, and when each project last
published."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from test_queue import FAILED, built, version

from piwheels.db import migrate as migrate_module
from piwheels.db import web_output
from piwheels.db.database import Database


def test_pending_pages_stay_until_written(db: Database) -> None:
    db.save_pending_pages([("BOTH", "foo"), ("SEARCH", ""), ("BOTH", "foo"), ("PROJECT", "bar")])
    taken = [("BOTH", "foo"), ("PROJECT", "bar"), ("SEARCH", "")]
    assert sorted(db.take_pending_pages()) == taken
    # a project's pages are asked for until the page writer has written them
    assert sorted(db.take_pending_pages()) == taken[:2]
    seen = db.page_requests("foo")
    db.save_pending_pages([("BOTH", "foo")])  # asked again while they were being written
    db.pages_written("foo", seen)
    db.pages_written("bar", db.page_requests("bar"))
    assert db.take_pending_pages() == [("BOTH", "foo")]
    db.pages_written("foo", db.page_requests("foo"))
    assert db.take_pending_pages() == []


def test_saved_requests_are_taken_in_parts(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_output, "PAGE_REQUESTS_AT_ONCE", 2)
    projects = [("BOTH", "a"), ("BOTH", "b"), ("BOTH", "c"), ("PROJECT", "a")]
    db.save_pending_pages([*projects, ("SEARCH", ""), ("HOME", "")])
    first = db.take_pending_pages()
    assert sorted(first) == [("BOTH", "a"), ("BOTH", "b"), ("HOME", ""), ("SEARCH", "")]
    assert db.take_pending_pages(("BOTH", "b")) == [("BOTH", "c"), ("PROJECT", "a")]
    assert db.take_pending_pages(("PROJECT", "a")) == []
    # the others are forgotten once taken; a project's stay until its pages are written
    assert db.take_pending_pages() == projects[:2]


def test_recording_a_build_asks_for_its_pages(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.take_pending_pages()
    db.log_build(1, "foo", "1.0", "cp311", FAILED)
    assert db.take_pending_pages() == [("BOTH", "foo")]


def test_each_project_with_files_says_when_it_last_published(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    db.log_build(1, "bar", "1.0", "cp39", FAILED)
    assert db.last_published() == []
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    [(package, first)] = db.last_published()
    db.log_build(1, "foo", "2.0", "cp39", built("foo-2.0-py3-none-any.whl"))
    [(package, newest)] = db.last_published()
    assert package == "foo"
    assert isinstance(newest, float) and newest >= first
    (built_at,) = db.conn.execute("SELECT extract(epoch FROM max(built_at)) FROM builds").fetchone()
    assert newest == float(built_at)


def test_projects_with_files_come_in_pages_in_name_order(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_output, "PUBLISHED_PAGE", 2)
    for name in ("e", "c", "a", "d", "b", "nofiles"):
        db.set_project(name, name, 1, "", "", [version("1.0")])
        if name != "nofiles":
            db.log_build(1, name, "1.0", "cp39", built(f"{name}-1.0-py3-none-any.whl"))
    pages, after = [], ""
    while page := db.last_published(after):
        pages.append([package for package, _ in page])
        after = page[-1][0]
    assert pages == [["a", "b"], ["c", "d"], ["e"]]


def test_a_project_whose_files_are_removed_publishes_as_its_files_left_say(
    db: Database, superuser_dsn: str
) -> None:
    db.set_project("foo", "foo", 1, "", "", [version("1.0"), version("2.0")])
    first = db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    db.log_build(1, "foo", "2.0", "cp39", built("foo-2.0-py3-none-any.whl"))
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:  # recorded a day apart
        conn.execute(
            "UPDATE builds SET built_at = built_at - interval '1 day' WHERE build_id = %s",
            (first,),
        )
    db.remove_version("foo", "2.0", "")
    (built_at,) = db.conn.execute(
        "SELECT extract(epoch FROM built_at) FROM builds WHERE build_id = %s", (first,)
    ).fetchone()
    assert db.last_published() == [("foo", float(built_at))]
    db.remove_version("foo", "1.0", "")
    # no files, no index to look for at every start
    assert db.last_published() == []


def test_the_upgrade_finds_when_each_project_last_published(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_migration = migrate_module.migrations()
    monkeypatch.setattr(
        migrate_module, "migrations", lambda: [m for m in every_migration if m.name < "0021"]
    )
    migrate_module.migrate(fresh_database)
    db = Database(make_conninfo(fresh_database, user="piwheels"))
    try:
        db.set_project("foo", "foo", 1, "", "", [version("1.0")])
        db.set_project("bar", "bar", 1, "", "", [version("1.0")])
        db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
        db.log_build(1, "bar", "1.0", "cp39", FAILED)
        monkeypatch.setattr(migrate_module, "migrations", lambda: every_migration)
        migrate_module.migrate(fresh_database)
        (built_at,) = db.conn.execute(
            "SELECT extract(epoch FROM built_at) FROM builds WHERE status"
        ).fetchone()
        assert db.last_published() == [("foo", float(built_at))]
    finally:
        db.close()


def test_a_log_on_record_is_given_back_as_it_was_sent(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    output = "line one\nüñí\x00code\n"
    build_id = db.log_build(1, "foo", "1.0", "cp39", FAILED._replace(output=output))
    # PostgreSQL's text holds no NUL: it is kept escaped
    assert db.get_build_output(build_id) == "line one\nüñí\\x00code\n"
    assert db.get_build_output(build_id + 1) is None
