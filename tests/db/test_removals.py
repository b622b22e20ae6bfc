"""PyPI's removals and statuses in the schema (migration 0018): the files they withhold, after the
grace, what a restart finds still to move, and what an operator's release keeps."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from test_queue import built, queue_of, version

from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.db.project_rows import ProjectUpdate
from piwheels.records.removals import MisplacedFile

AT_ONCE = timedelta(0)
WHEEL = "foo-1.0-py3-none-any.whl"


def record(db: Database, *versions: str, serial: int = 1, **status: str | None) -> None:
    """foo as PyPI lists it: *versions*, and its status if given."""
    update = ProjectUpdate("foo", "Foo", serial, "", "", [version(v) for v in versions], **status)
    assert db.set_projects([update]) == []


def reasons(db: Database) -> dict[str, tuple[list[str], bool]]:
    rows = db.conn.execute("SELECT filename, withheld_for, moved_out FROM files ORDER BY 1")
    return {name: (list(why), moved) for name, why, moved in rows}


def withhold_and_move(db: Database, grace: timedelta = AT_ONCE) -> list[MisplacedFile]:
    """A look: what is to move, moved (as Cloud Gazer has the File Juggler do)."""
    found = db.withhold_for_pypi(grace)
    for file in found.files:
        db.files_placed([file.filename], file.withhold)
    return found.files


def test_a_status_is_recorded_and_a_quarantine_leaves_the_queue(db: Database) -> None:
    record(db, "1.0", "2.0", status="archived", status_reason="done")
    row = "SELECT status, status_reason, status_since IS NOT NULL FROM packages"
    assert db.conn.execute(row).fetchall() == [("archived", "done", True)]
    assert queue_of(db) == {"cp39": [("foo", "2.0"), ("foo", "1.0")]}  # archived: still built
    project = db.get_project_data("foo")
    assert project is not None
    assert (project.status, project.status_reason) == ("archived", "done")

    record(db, "1.0", "2.0", serial=2, status="quarantined", status_reason="malware")
    assert queue_of(db) == {}
    # nothing brings a quarantined project back to the queue: a new release, a new ABI
    record(db, "1.0", "2.0", "3.0", serial=3, status="quarantined", status_reason="malware")
    db.set_build_abis(sorted_abis(["cp39", "cp311"]))
    assert queue_of(db) == {}
    # a fetch whose status could not be read (None), or a status no one knows, changes nothing
    record(db, "1.0", "2.0", "3.0", serial=4)
    record(db, "1.0", "2.0", "3.0", serial=5, status="haunted")
    assert db.conn.execute(row).fetchall() == [("quarantined", "malware", True)]

    record(db, "1.0", "2.0", "3.0", serial=6, status="active")
    assert queue_of(db) == {"cp39": [("foo", "3.0"), ("foo", "2.0"), ("foo", "1.0")]}


def test_a_removed_release_is_withheld_and_comes_back(db: Database) -> None:
    record(db, "1.0", "2.0")
    db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    db.pages_written("foo", db.page_requests("foo"))  # the build's pages are written
    record(db, "2.0", serial=2)  # PyPI no longer lists 1.0
    found = db.withhold_for_pypi(AT_ONCE)
    assert found.projects == []
    assert found.files == [MisplacedFile("foo", WHEEL, True)]
    assert reasons(db) == {WHEEL: (["removed"], False)}
    project = db.get_project_data("foo")
    assert project is not None
    assert [(f.withheld, f.withheld_for) for f in project.files] == [(True, ("removed",))]

    # the master dies before the File Juggler moves it: the next look finds it again
    assert db.withhold_for_pypi(AT_ONCE).files == [MisplacedFile("foo", WHEEL, True)]
    db.files_placed([WHEEL], True)
    assert reasons(db) == {WHEEL: (["removed"], True)}
    assert db.take_pending_pages() == [("BOTH", "foo")]  # its pages must not list it now
    assert db.withhold_for_pypi(AT_ONCE).files == []

    record(db, "1.0", "2.0", serial=3)  # PyPI lists it again
    assert withhold_and_move(db) == [MisplacedFile("foo", WHEEL, False)]
    assert reasons(db) == {WHEEL: ([], False)}


def test_a_removal_waits_for_the_grace(db: Database, superuser_dsn: str) -> None:
    record(db, "1.0", "2.0")
    db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    record(db, "2.0", serial=2)
    hour = timedelta(hours=1)
    assert db.withhold_for_pypi(hour).files == []
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("UPDATE versions SET removed_at = now() - interval '2 hours'")
    assert db.withhold_for_pypi(hour).files == [MisplacedFile("foo", WHEEL, True)]


def test_a_removed_project_leaves_the_index_whole(db: Database) -> None:
    record(db, "1.0")
    db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    assert db.get_indexed_projects() == ["foo"]
    db.remove_project("foo")
    found = db.withhold_for_pypi(AT_ONCE)
    assert found.projects == ["foo"]  # the root and search change
    assert found.files == [MisplacedFile("foo", WHEEL, True)]
    assert db.get_indexed_projects() == []
    assert db.get_search_entries() == []

    record(db, "1.0", serial=2)  # back on PyPI
    found = db.withhold_for_pypi(AT_ONCE)
    assert found.projects == ["foo"]
    assert found.files == []  # it was never moved out: nothing to move back
    assert reasons(db) == {WHEEL: ([], False)}
    assert db.get_indexed_projects() == ["foo"]


def test_a_quarantine_withholds_even_later_builds(db: Database) -> None:
    record(db, "1.0", "2.0")
    db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    record(db, "1.0", "2.0", serial=2, status="quarantined", status_reason="malware")
    assert db.withhold_for_pypi(AT_ONCE) == (["foo"], [MisplacedFile("foo", WHEEL, True)])
    db.files_placed([WHEEL], True)
    # a build that was under way when PyPI quarantined the project is withheld as it lands
    db.log_build(1, "foo", "2.0", "cp39", built("foo-2.0-py3-none-any.whl"))
    assert reasons(db)["foo-2.0-py3-none-any.whl"] == (["quarantined"], False)
    assert withhold_and_move(db) == [MisplacedFile("foo", "foo-2.0-py3-none-any.whl", True)]
    # an operator cannot release around a quarantine
    with pytest.raises(psycopg.Error, match="PyPI quarantines foo"):
        db.release_withheld("foo", "1.0")

    # PyPI's JSON API may withhold the details of a quarantined project: its status alone
    db.set_project_status("foo", 3, "active", "")
    found = db.withhold_for_pypi(AT_ONCE)
    assert found.projects == ["foo"]
    assert sorted(f.filename for f in found.files if not f.withhold) == [
        WHEEL,
        "foo-2.0-py3-none-any.whl",
    ]
    assert db.conn.execute("SELECT serial, status FROM packages").fetchall() == [(3, "active")]


def test_an_operators_release_outlasts_the_next_look_until_pypi_lists_it(db: Database) -> None:
    record(db, "1.0", "2.0")
    db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    record(db, "2.0", serial=2)
    withhold_and_move(db)
    assert db.release_withheld("foo", "1.0") == [WHEEL]
    # Mr. Chase has the File Juggler put it back; the next look records that, and no more
    assert withhold_and_move(db) == [MisplacedFile("foo", WHEEL, False)]
    assert withhold_and_move(db) == []
    assert reasons(db) == {WHEEL: ([], False)}

    record(db, "1.0", "2.0", serial=3)  # listed again: the keep is forgotten
    record(db, "2.0", serial=4)  # and a new removal withholds it again
    assert withhold_and_move(db) == [MisplacedFile("foo", WHEEL, True)]


def test_a_disagreement_and_a_removal_each_hold_a_file(db: Database) -> None:
    record(db, "1.0", "2.0")
    build_id = db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    assert db.withhold_build(build_id) == [WHEEL]  # the Slave Driver moves it itself
    assert withhold_and_move(db) == []  # not PyPI's to move
    record(db, "2.0", serial=2)
    assert db.withhold_build(build_id) == []
    assert withhold_and_move(db) == [MisplacedFile("foo", WHEEL, True)]  # (already out)
    assert reasons(db) == {WHEEL: (["disagreement", "removed"], True)}

    record(db, "1.0", "2.0", serial=3)  # PyPI's reason ends; the disagreement's stays
    assert withhold_and_move(db) == []
    assert reasons(db) == {WHEEL: (["disagreement"], False)}
    project = db.get_project_data("foo")
    assert project is not None
    assert [f.withheld for f in project.files] == [True]


# Each look's queries, in the words of their partial indexes (migration 0019): the table, the
# test, and the index that must answer it.
LOOKS_FOR = [
    ("versions", "((removed AND NOT kept) <> removal_applied) IS TRUE", "versions_withholding"),
    (
        "packages",
        (
            "(removed <> removal_applied) IS TRUE"
            " OR ((status = 'quarantined') <> quarantine_applied) IS TRUE"
        ),
        "packages_withholding",
    ),
    (
        "files",
        "((withheld_for && ARRAY['removed', 'quarantined']::varchar(20)[]) <> moved_out) IS TRUE",
        "files_misplaced",
    ),
]


def test_a_look_finds_its_few_rows_by_index_in_full_tables(
    db: Database, superuser_dsn: str
) -> None:
    """At PyPI's scale a look at PyPI must not read whole tables for the few rows whose
    withholding changes: the planner must know those rows are few, and reach them by index."""
    record(db, "1.0", "2.0")
    db.log_build(1, "foo", "1.0", "cp39", built(WHEEL))
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO packages (package, display_name) "
            "SELECT 'p' || n, 'p' || n FROM generate_series(1, 2000) n"
        )
        conn.execute(
            "INSERT INTO versions (package, version, has_sdist) "
            "SELECT 'p' || (n % 2000 + 1), n::text, true FROM generate_series(1, 10000) n"
        )
        conn.execute(
            "INSERT INTO files (filename, build_id, filesize, filehash, package_tag, "
            "package_version_tag, py_version_tag, abi_tag, platform_tag) "
            "SELECT 'foo-1.0.' || n || '-py3-none-any.whl', build_id, filesize, filehash, "
            "package_tag, package_version_tag, py_version_tag, abi_tag, platform_tag "
            "FROM files, generate_series(1, 10000) n"
        )
        conn.execute("UPDATE versions SET removed = true WHERE package = 'p7'")  # a few to do
        conn.execute("ANALYZE packages, versions, files")
        for table, test, index in LOOKS_FOR:
            [(plan,)] = conn.execute(f"EXPLAIN (FORMAT JSON) SELECT * FROM {table} WHERE {test}")
            top = plan[0]["Plan"]
            assert index in str(plan), f"{table}: {top}"
            assert top["Plan Rows"] < 100, f"{table}: {top}"
    found = db.withhold_for_pypi(AT_ONCE)
    assert found.files == []  # p7's versions have no files; foo has nothing to withhold
