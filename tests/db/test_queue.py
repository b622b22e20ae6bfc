"""The build queue's rules, against a real PostgreSQL (seed 000 and issue #2, item 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from piwheels.abis import sorted_abis
from piwheels.db.database import Database, ProjectRow, ProjectUpdate, ProjectVersion, project_row
from piwheels.db.migrate import SchemaError, check_version, latest_version, migrate
from piwheels.states import BuildResult, FileState

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def version(ver: str, *, days_ago: int = 0, **kwargs: object) -> ProjectVersion:
    fields: dict[str, object] = {
        "version": ver,
        "released": NOW - timedelta(days=days_ago),
        "requires_python": None,
        "has_sdist": True,
        "yanked": False,
        "skip": "",
    }
    fields.update(kwargs)
    return ProjectVersion(**fields)  # type: ignore[arg-type]


def wheel(name: str) -> FileState:
    pkg, ver, py, abi, plat = name.removesuffix(".whl").split("-")
    return FileState(name, 100, "0" * 64, pkg, ver, py, abi, plat, frozenset(), None)


def built(*names: str) -> BuildResult:
    return BuildResult(True, timedelta(seconds=5), "ok", [wheel(n) for n in names])


FAILED = BuildResult(False, timedelta(seconds=5), "error: it broke", [])


def queue_of(db: Database) -> dict[str, list[tuple[str, str]]]:
    return {abi: entries for abi, entries in db.get_queue(100).heads.items() if entries}


def test_abis_are_ordered_by_python_version_not_text(db: Database) -> None:
    assert [abi.abi_tag for abi in db.get_build_abis()] == ["cp39", "cp310", "cp311", "cp313"]


def test_new_version_is_queued_at_once_on_the_lowest_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_none_wheel_covers_every_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    assert queue_of(db) == {}


def test_abi_specific_wheel_moves_on_to_the_next_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    assert queue_of(db) == {"cp310": [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp310", built("foo-1.0-cp310-cp310-linux_x86_64.whl"))
    assert queue_of(db) == {"cp311": [("foo", "1.0")]}


def test_abi3_wheel_covers_its_abi_and_above(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(1, "foo", "1.0", "cp310", built("foo-1.0-cp310-abi3-linux_x86_64.whl"))
    assert queue_of(db) == {}


def test_abi3_wheel_above_the_abi_built_on_does_not_cover_it(db: Database) -> None:
    # a cp311-abi3 wheel built on cp39 cannot serve 3.9 or 3.10: they still need their builds
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp311-abi3-linux_x86_64.whl"))
    assert queue_of(db) == {"cp310": [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp310", FAILED)
    assert queue_of(db) == {}


def test_failure_moves_on_and_is_not_retried_on_the_same_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    for abi, following in (("cp39", "cp310"), ("cp310", "cp311"), ("cp311", "cp313")):
        db.log_build(1, "foo", "1.0", abi, FAILED)
        assert queue_of(db) == {following: [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp313", FAILED)
    assert queue_of(db) == {}
    db.set_project("foo", "Foo", 2, "", "", [version("1.0")])  # a PyPI update changes nothing
    assert queue_of(db) == {}


def test_requires_python_skips_abis_with_a_reason(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", requires_python=">=3.11")])
    assert queue_of(db) == {"cp311": [("foo", "1.0")]}
    reasons = db.conn.execute(
        "SELECT abi_tag, reason FROM version_abi_skips ORDER BY abi_tag"
    ).fetchall()
    assert reasons == [
        ("cp310", "Requires-Python '>=3.11' excludes Python 3.10"),
        ("cp39", "Requires-Python '>=3.11' excludes Python 3.9"),
    ]


def test_requires_python_excluding_every_abi_queues_nothing(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", requires_python="<3")])
    assert queue_of(db) == {}


@pytest.mark.parametrize(
    "change",
    [{"yanked": True}, {"has_sdist": False}, {"skip": "not a valid PEP 440 version"}],
    ids=["yanked", "binary-only", "skipped"],
)
def test_unbuildable_versions_are_never_queued(db: Database, change: dict[str, object]) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", **change)])
    assert queue_of(db) == {}


def test_yanking_a_queued_version_takes_it_off_the_queue(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.set_project("foo", "Foo", 2, "", "", [version("1.0", yanked=True)])
    assert queue_of(db) == {}


def test_removed_versions_and_projects_leave_the_queue(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_project("foo", "Foo", 2, "", "", [version("2.0")])
    assert queue_of(db) == {"cp39": [("foo", "2.0")]}
    removed = db.conn.execute("SELECT removed FROM versions WHERE version = '1.0'").fetchone()
    assert removed == (True,)
    db.remove_project("foo")
    assert queue_of(db) == {}
    assert db.get_package_serials() == {"foo": -1}


def test_binary_only_version_is_queued_when_an_sdist_appears(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", has_sdist=False)])
    assert queue_of(db) == {}
    db.set_project("foo", "Foo", 2, "", "", [version("1.0")])
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_newest_release_first_within_an_abi(db: Database) -> None:
    db.set_project("old", "old", 1, "", "", [version("1.0", days_ago=400)])
    db.set_project("new", "new", 1, "", "", [version("1.0", days_ago=0)])
    db.set_project("mid", "mid", 1, "", "", [version("1.0", days_ago=30)])
    assert queue_of(db) == {"cp39": [("new", "1.0"), ("mid", "1.0"), ("old", "1.0")]}
    assert db.get_queue(100).lengths == {"cp39": 3, "cp310": 0, "cp311": 0, "cp313": 0}


def test_adding_an_abi_requeues_with_its_skips(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", requires_python=">=3.12")])
    assert queue_of(db) == {"cp313": [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp313", built("foo-1.0-cp313-cp313-linux_x86_64.whl"))
    assert db.set_build_abis(sorted_abis(["cp39", "cp310", "cp311", "cp312", "cp313"]))
    assert queue_of(db) == {"cp312": [("foo", "1.0")]}
    assert not db.set_build_abis(sorted_abis(["cp39", "cp310", "cp311", "cp312", "cp313"]))


def test_published_file_keeps_its_first_record(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    first = wheel("foo-1.0-py3-none-any.whl")
    db.log_build(1, "foo", "1.0", "cp39", BuildResult(True, timedelta(1), "", [first]))
    other = first._replace(filehash="f" * 64)
    db.log_build(2, "foo", "1.0", "cp310", BuildResult(True, timedelta(1), "", [other]))
    assert db.get_file_hashes([first.filename]) == {first.filename: "0" * 64}


def test_log_build_of_unknown_version_fails_cleanly(db: Database) -> None:
    with pytest.raises(psycopg.Error, match="unknown version"):
        db.log_build(1, "nope", "1.0", "cp39", FAILED)


def test_master_role_cannot_write_tables_directly(db: Database) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.conn.execute("DELETE FROM builds")


def test_migrate_is_idempotent_and_refuses_downgrades(superuser_dsn: str) -> None:
    assert migrate(superuser_dsn) == latest_version()
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("UPDATE configuration SET schema_version = schema_version + 1")
        with pytest.raises(SchemaError, match="upgrade piwheels"):
            check_version(conn)
    with pytest.raises(SchemaError, match="downgrades are not supported"):
        migrate(superuser_dsn)


def test_master_refuses_an_unmigrated_database(fresh_database: str) -> None:
    with pytest.raises(SchemaError, match="run piw-init-db"):
        Database(fresh_database).conn  # noqa: B018


def test_several_projects_in_one_transaction_and_a_refused_one_alone(db: Database) -> None:
    too_long = "x" * 300  # longer than any package name the schema holds
    refused = db.set_projects(
        [
            ProjectUpdate("foo", "Foo", 5, "", "", [version("1.0"), version("2.0")]),
            ProjectUpdate(too_long, too_long, 6, "", "", [version("1.0")]),
            ProjectUpdate("bar", "bar", 7, "", "", [version("0.1")]),
        ]
    )
    assert [name for name, _ in refused] == [too_long]
    assert "too long" in refused[0][1]
    assert db.get_package_serials() == {"foo": 5, "bar": 7}
    assert {(p, v) for p, v, _ in _queue_rows(db)} >= {("foo", "2.0"), ("bar", "0.1")}
    # one project alone is not put aside: its refusal is the caller's error
    with pytest.raises(psycopg.errors.StringDataRightTruncation):
        db.set_project(too_long, too_long, 6, "", "", [version("1.0")])


def test_a_row_made_for_other_abis_gets_its_skips_worked_out_again(db: Database) -> None:
    # made by a fetch process before the farm's ABIs changed: its skips know nothing of cp313
    old_abis = sorted_abis(["cp39"])
    update = ProjectUpdate("foo", "Foo", 5, "", "", [version("1.0", requires_python="<3.12")])
    row = project_row(update, old_abis)
    assert json.loads(row.row)["versions"][0]["abi_skips"] == []
    assert db.set_project_rows([row, ProjectRow("bad", "cp39", "not JSON")]) == [
        ("bad", "invalid input syntax for type json")
    ]
    skipped = db.conn.execute("SELECT abi_tag FROM version_abi_skips").fetchall()
    assert skipped == [("cp313",)]  # the farm's ABIs now: cp39, cp310, cp311, cp313


def _queue_rows(db: Database) -> list[tuple[str, str, str]]:
    snapshot = db.get_queue(100)
    return [(p, v, abi) for abi, entries in snapshot.heads.items() for p, v in entries]


def _state(db: Database, prefix: str) -> dict[str, object]:
    """Everything recorded of the packages named *prefix*..., with the prefix taken off."""
    like = prefix + "%"
    rows = {
        "packages": "SELECT package, serial, summary, removed FROM packages WHERE package LIKE %s",
        "versions": "SELECT package, version, requires_python, yanked, removed, skip"
        " FROM versions WHERE package LIKE %s",
        "skips": "SELECT v.package, v.version, s.abi_tag, s.reason FROM version_abi_skips s"
        " JOIN versions v USING (version_id) WHERE v.package LIKE %s",
        "queue": "SELECT v.package, v.version, q.abi_tag FROM build_queue q"
        " JOIN versions v USING (version_id) WHERE v.package LIKE %s",
    }
    return {
        what: sorted(
            (row[0].removeprefix(prefix), *row[1:]) for row in db.conn.execute(query, (like,))
        )
        for what, query in rows.items()
    }


def test_a_batch_records_what_the_same_projects_one_by_one_would(db: Database) -> None:
    """Every rule of set_project at once: new and changed versions, one gone from PyPI,
    skips that change both ways, a project back after removal, and one left alone."""
    rounds = [
        [
            ("new", [version("1.0"), version("2.0", requires_python=">=3.11")]),
            ("gone", [version("1.0"), version("2.0")]),
            ("same", [version("1.0")]),
            ("back", [version("1.0"), version("2.0")]),
        ],
        [
            ("new", [version("2.0", requires_python=">=3.10"), version("3.0")]),
            ("gone", [version("2.0", requires_python="<3")]),
            ("same", [version("1.0")]),
            ("back", [version("1.0"), version("2.0"), version("3.0")]),
        ],
    ]
    for serial, projects in enumerate(rounds, 1):
        for name, versions in projects:
            db.set_project(f"one-{name}", name, serial, f"round {serial}", "", versions)
        updates = [
            ProjectUpdate(f"all-{name}", name, serial, f"round {serial}", "", versions)
            for name, versions in projects
        ]
        assert db.set_projects(updates) == []
        if serial == 1:
            db.remove_project("one-back")
            db.remove_project("all-back")
    state = _state(db, "all-")
    assert state == _state(db, "one-")
    assert state["queue"] == [
        ("back", "1.0", "cp39"),
        ("back", "2.0", "cp39"),
        ("back", "3.0", "cp39"),
        ("new", "2.0", "cp310"),  # its cp310 skip went away
        ("new", "3.0", "cp39"),
        ("same", "1.0", "cp39"),
    ]
    assert [row[:3] for row in state["skips"] if row[0] == "new"] == [("new", "2.0", "cp39")]
    assert ("gone", "1.0", None, False, True, "") in state["versions"]
    assert len([row for row in state["skips"] if row[0] == "gone"]) == 4


def test_a_batch_naming_a_project_twice_is_recorded_one_by_one(db: Database) -> None:
    refused = db.set_projects(
        [
            ProjectUpdate("foo", "Foo", 1, "", "", [version("1.0")]),
            ProjectUpdate("foo", "Foo", 2, "", "", [version("1.0"), version("2.0")]),
        ]
    )
    assert refused == []
    assert db.get_package_serials() == {"foo": 2}
    assert queue_of(db) == {"cp39": [("foo", "1.0"), ("foo", "2.0")]}
