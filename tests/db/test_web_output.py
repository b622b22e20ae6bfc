"""What the web output asks of the database: which pages to write, and when each project last
published."""

from __future__ import annotations

from test_queue import FAILED, built, version

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


def test_a_log_on_record_is_given_back_as_it_was_sent(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    output = "line one\nüñí\x00code\n"
    build_id = db.log_build(1, "foo", "1.0", "cp39", FAILED._replace(output=output))
    # PostgreSQL's text holds no NUL: it is kept escaped
    assert db.get_build_output(build_id) == "line one\nüñí\\x00code\n"
    assert db.get_build_output(build_id + 1) is None
