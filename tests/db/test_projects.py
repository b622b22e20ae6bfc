"""Following PyPI: projects recorded one by one or in batches, and their rows."""

from __future__ import annotations

import json

import psycopg
import pytest
from test_queue import queue_of, version

from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.db.project_rows import ProjectUpdate, project_row
from piwheels.records.projects import ProjectRow


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
    assert queue_of(db) == {"cp39": [("foo", "2.0"), ("foo", "1.0")]}


def test_pypis_serial_is_where_following_it_goes_on(db: Database) -> None:
    assert db.get_pypi_serial() == 0
    db.set_pypi_serial(12345)
    assert db.get_pypi_serial() == 12345


def test_a_removed_project_has_no_serial_so_its_return_is_noticed(db: Database) -> None:
    db.set_project("foo", "Foo", 5, "", "", [version("1.0")])
    db.set_project("bar", "bar", 7, "", "", [version("1.0")])
    db.remove_project("foo")
    assert db.get_package_serials() == {"foo": -1, "bar": 7}
    assert queue_of(db) == {"cp39": [("bar", "1.0")]}
    db.set_project("foo", "Foo", 9, "", "", [version("1.0")])
    assert db.get_package_serials() == {"foo": 9, "bar": 7}


def test_a_new_sdist_or_yank_reason_alone_is_recorded_without_touching_the_queue(
    db: Database,
) -> None:
    url, sha = "https://files.example/foo-1.0.tar.gz", "a" * 64
    first = [
        version("1.0", sdist_url=url, sdist_sha256=sha),
        version("0.9", yanked=True, yanked_reason="broken"),
    ]
    db.set_project("foo", "Foo", 5, "", "", first)
    stored = "SELECT version, sdist_url, sdist_sha256, yanked_reason FROM versions ORDER BY 1"
    assert db.conn.execute(stored).fetchall() == [
        ("0.9", "", "", "broken"),
        ("1.0", url, sha, None),
    ]
    queue_changes = "SELECT count(*) FROM build_queue_journal"
    before = db.conn.execute(queue_changes).fetchone()
    # the sdist re-uploaded elsewhere, the reason reworded: nothing about the builds changes
    second = [
        version("1.0", sdist_url=url.replace("files", "mirror"), sdist_sha256="b" * 64),
        version("0.9", yanked=True, yanked_reason="broken on Python 3.13"),
    ]
    db.set_project("foo", "Foo", 6, "", "", second)
    assert db.conn.execute(stored).fetchall() == [
        ("0.9", "", "", "broken on Python 3.13"),
        ("1.0", url.replace("files", "mirror"), "b" * 64, None),
    ]
    assert db.conn.execute(queue_changes).fetchone() == before
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}
