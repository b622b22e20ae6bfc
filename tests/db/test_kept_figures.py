"""Big Brother's figures, kept by the schema (migration 0007), against a real PostgreSQL.

After every kind of write the kept figures must equal a count of the tables, as statistics()
used to make every minute.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from test_queue import FAILED, built, log_build_before_0012, set_projects_alone, version

from piwheels.abis import sorted_abis
from piwheels.db import migrate as migrate_module
from piwheels.db.database import Database

KEPT = ("packages", "versions", "builds", "builds_succeeded", "files", "bytes")
COUNTED = (
    "SELECT (SELECT count(*) FROM packages WHERE NOT removed), "
    "(SELECT count(*) FROM versions WHERE NOT removed), "
    "(SELECT count(*) FROM builds), (SELECT count(*) FROM builds WHERE status), "
    "(SELECT count(*) FROM files), (SELECT coalesce(sum(filesize), 0) FROM files)"
)


def counted(db: Database) -> dict[str, int]:
    row = db.conn.execute(COUNTED).fetchone()
    assert row is not None
    return dict(zip(KEPT, (int(v) for v in row), strict=True))


def kept(db: Database) -> dict[str, int]:
    stats = db.get_statistics()._asdict()
    return {name: stats[name] for name in KEPT}


@pytest.fixture
def superuser(superuser_dsn: str) -> Iterator[psycopg.Connection]:
    """For what the master's role may not do: TRUNCATE, DELETE by hand."""
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        yield conn


def test_figures_follow_every_write(db: Database) -> None:
    assert kept(db) == counted(db) == dict.fromkeys(KEPT, 0)
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0"), version("3.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    assert kept(db) == counted(db)
    assert kept(db)["versions"] == 4

    # a version gone from PyPI, and back
    db.set_project("foo", "Foo", 2, "", "", [version("2.0"), version("3.0")])
    assert kept(db) == counted(db)
    assert kept(db)["versions"] == 3
    db.set_project("foo", "Foo", 3, "", "", [version("1.0"), version("2.0"), version("3.0")])
    assert kept(db) == counted(db)
    assert kept(db)["versions"] == 4

    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(
        1,
        "foo",
        "2.0",
        "cp39",
        built("foo-2.0-cp39-cp39-linux_x86_64.whl", "foo-2.0-cp39-cp39-linux_armv7l.whl"),
    )
    db.log_build(1, "foo", "3.0", "cp39", FAILED)
    failed_with_a_file = FAILED._replace(files=built("bar-1.0-py3-none-any.whl").files)
    db.log_build(1, "bar", "1.0", "cp39", failed_with_a_file)
    # a filename already published is not published again
    db.log_build(2, "foo", "2.0", "cp310", built("foo-2.0-cp39-cp39-linux_x86_64.whl"))
    assert kept(db) == counted(db)
    assert kept(db) == {
        "packages": 2,
        "versions": 4,
        "builds": 5,
        "builds_succeeded": 3,
        "files": 4,
        "bytes": 400,
    }

    # a project gone from PyPI (its versions stay counted, as before), and back
    db.remove_project("bar")
    assert kept(db) == counted(db)
    assert kept(db)["packages"] == 1
    db.set_project("bar", "bar", 2, "", "", [version("1.0")])
    assert kept(db) == counted(db)
    assert kept(db)["packages"] == 2

    # operators' repairs delete builds and their files
    assert len(db.remove_version("foo", "2.0", "")) == 2
    assert kept(db) == counted(db)
    assert db.retry_failed("bar", "1.0", None) == 1
    assert kept(db) == counted(db)
    assert kept(db) == {
        "packages": 2,
        "versions": 4,
        "builds": 2,
        "builds_succeeded": 1,
        "files": 1,
        "bytes": 100,
    }


def test_cascaded_deletes_are_counted(db: Database, superuser: psycopg.Connection) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(1, "foo", "2.0", "cp39", built("foo-2.0-py3-none-any.whl"))
    db.log_build(1, "bar", "1.0", "cp39", built("bar-1.0-py3-none-any.whl"))
    assert kept(db) == counted(db)
    # deleting the project deletes its versions, builds and files by ON DELETE CASCADE
    superuser.execute("DELETE FROM packages WHERE package = 'foo'")
    assert kept(db) == counted(db)
    assert kept(db) == {
        "packages": 1,
        "versions": 1,
        "builds": 1,
        "builds_succeeded": 1,
        "files": 1,
        "bytes": 100,
    }


def test_truncate_starts_the_figures_again(db: Database, superuser: psycopg.Connection) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(1, "foo", "2.0", "cp39", FAILED)
    superuser.execute("TRUNCATE files CASCADE")
    assert kept(db) == counted(db)
    assert (kept(db)["builds"], kept(db)["files"]) == (2, 0)
    db.log_build(1, "foo", "2.0", "cp310", built("foo-2.0-cp310-cp310-linux_x86_64.whl"))
    # emptied with changes still in the journal: those must not come back
    superuser.execute("TRUNCATE packages CASCADE")
    assert kept(db) == counted(db) == dict.fromkeys(KEPT, 0)
    db.set_project("foo", "Foo", 2, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    assert kept(db) == counted(db)
    assert kept(db)["files"] == 1


def test_concurrent_writers_are_both_counted_and_never_wait(db: Database) -> None:
    """Two Oracles recording builds at once: neither waits for the other's commit (as each
    would on a shared counter row), and both builds are counted."""
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    before = kept(db)
    one, two = Database(db.dsn), Database(db.dsn)
    try:
        with one.conn.transaction():
            one.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
            with two.conn.transaction():
                # fails at once, rather than waiting, on a row the first transaction holds
                two.conn.execute("SET LOCAL lock_timeout = '1s'")
                two.log_build(2, "bar", "1.0", "cp39", built("bar-1.0-cp39-cp39-linux_x86_64.whl"))
            # the first is not committed yet: only the second is counted, and folding the
            # journal meanwhile leaves the first's change for later
            assert kept(db) == counted(db)
            assert kept(db)["builds"] == before["builds"] + 1
        assert kept(db) == counted(db)
        assert kept(db)["builds"] == before["builds"] + 2
        assert kept(db)["files"] == before["files"] + 2
    finally:
        one.close()
        two.close()


def test_concurrent_readers_and_writers_agree(db: Database) -> None:
    """Several writers and readers folding the journal at once lose and double no change."""
    db.set_project("foo", "Foo", 1, "", "", [version(f"1.{i}") for i in range(40)])
    errors: list[BaseException] = []

    def write(slave: int) -> None:
        writer = Database(db.dsn)
        try:
            for i in range(slave, 40, 2):
                name = f"foo-1.{i}-cp39-cp39-linux_x86_64.whl"
                writer.log_build(slave, "foo", f"1.{i}", "cp39", built(name))
                writer.get_statistics()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            writer.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        db.get_statistics()
    for thread in threads:
        thread.join()
    assert errors == []
    assert kept(db) == counted(db)
    assert kept(db)["builds"] == kept(db)["files"] == 40


def test_the_upgrade_counts_what_is_already_there(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_migration = migrate_module.migrations()
    before = [m for m in every_migration if m.name < "0007"]
    monkeypatch.setattr(migrate_module, "migrations", lambda: before)
    # before migration 0012 no build waits for a release, before 0014 nothing has a yank
    # reason, before 0020 set_projects is called alone
    monkeypatch.setattr(Database, "requeue_met_dep_waits", lambda self, projects: [])
    monkeypatch.setattr(Database, "_record_batch", set_projects_alone)
    migrate_module.migrate(fresh_database)
    db = Database(make_conninfo(fresh_database, user="piwheels"))
    try:
        db.set_build_abis(sorted_abis(["cp39", "cp311"]))
        db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
        db.set_project("foo", "Foo", 2, "", "", [version("2.0")])
        db.set_project("bar", "bar", 1, "", "", [version("1.0")])
        db.remove_project("bar")
        log_build_before_0012(
            db, 1, "foo", "2.0", "cp39", built("foo-2.0-cp39-cp39-linux_x86_64.whl")
        )
        log_build_before_0012(db, 1, "foo", "2.0", "cp311", FAILED)
        monkeypatch.setattr(migrate_module, "migrations", lambda: every_migration)
        assert migrate_module.migrate(fresh_database) == len(every_migration)
        db.close()
        assert kept(db) == counted(db)
        assert kept(db) == {
            "packages": 1,
            "versions": 2,
            "builds": 2,
            "builds_succeeded": 1,
            "files": 1,
            "bytes": 100,
        }
    finally:
        db.close()
