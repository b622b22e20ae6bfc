"""The reads behind the web pages, against a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from test_queue import FAILED, built, version

from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.records.builds import BuildState


def test_project_data_shows_every_version_and_abi(db: Database) -> None:
    db.set_project(
        "foo",
        "Foo",
        1,
        "A <b>summary</b>",
        "Long text",
        [
            version("1.0", days_ago=10),
            version("2.0", days_ago=1, requires_python=">=3.11"),
            version("3.0", has_sdist=False),
            version("0.9", days_ago=20, yanked=True),
            version("0.1", has_sdist=False, days_ago=None),  # its files deleted from PyPI
        ],
    )
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(1, "foo", "1.0", "cp310", FAILED)
    db.log_build(1, "foo", "1.0", "cp311", built("foo-1.0-cp311-abi3-linux_x86_64.whl"))
    project = db.get_project_data("foo")
    assert project is not None
    assert (project.name, project.display_name, project.summary) == (
        "foo",
        "Foo",
        "A <b>summary</b>",
    )
    assert project.abis == ["cp39", "cp310", "cp311", "cp313"]
    assert [v.version for v in project.versions] == ["3.0", "2.0", "1.0", "0.9", "0.1"]
    by_version = {v.version: v for v in project.versions}
    one = by_version["1.0"].cells
    assert [one[abi].state for abi in project.abis] == [
        BuildState.BUILT,
        BuildState.FAILED,
        BuildState.BUILT,
        BuildState.COVERED,
    ]
    assert one["cp313"].reason == "served by the cp311 build"
    two = by_version["2.0"].cells
    assert two["cp39"] == (
        BuildState.SKIPPED,
        "Requires-Python '>=3.11' excludes Python 3.9",
        None,
        None,
    )
    assert two["cp311"].state == BuildState.PENDING
    # 2.0 is the only version queued: its project's newest release, first in line
    assert two["cp311"].reason == "queued (newest release): 0 ahead"
    place = two["cp311"].place
    assert place is not None
    assert (place.tier, place.rank, place.ahead, place.ahead_at_most) == (1, 1, 0, 0)
    assert two["cp313"].reason == "waiting for a lower ABI"
    assert by_version["3.0"].skip == "binary only: no sdist on PyPI"
    assert by_version["0.1"].skip == "no files on PyPI"
    assert by_version["3.0"].cells["cp39"].state == BuildState.SKIPPED
    assert by_version["0.9"].yanked
    # a yanked version is never built: it says so, on every ABI (#14)
    yanked = by_version["0.9"].cells
    assert {yanked[abi] for abi in project.abis} == {
        (BuildState.YANKED, "yanked on PyPI: not built", None, None)
    }
    files = by_version["1.0"].files
    assert [f.filename for f in files] == [
        "foo-1.0-cp311-abi3-linux_x86_64.whl",
        "foo-1.0-cp39-cp39-linux_x86_64.whl",
    ]
    assert [b.status for b in by_version["1.0"].builds] == [True, False, True]
    assert by_version["1.0"].builds[0].duration == timedelta(seconds=5)
    assert db.get_project_data("nope") is None


def test_index_search_statistics_and_logs(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "Foo things", "", [version("1.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    build_id = db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    db.log_build(1, "bar", "1.0", "cp39", FAILED)
    assert db.get_indexed_projects() == ["foo"]
    assert [tuple(e) for e in db.get_search_entries()] == [("foo", "Foo things", 1, 1)]
    stats = db.get_statistics()._asdict()
    assert {
        k: stats[k]
        for k in (
            "packages",
            "versions",
            "builds",
            "builds_succeeded",
            "builds_last_hour",
            "failures_last_hour",
            "files",
        )
    } == {
        "packages": 2,
        "versions": 2,
        "builds": 2,
        "builds_succeeded": 1,
        "builds_last_hour": 2,
        "failures_last_hour": 1,
        "files": 1,
    }
    assert stats["queue"] == {"cp39": 0, "cp310": 1, "cp311": 0, "cp313": 0}
    assert db.get_build_output(build_id) == "ok"


def _published_by_join(db: Database) -> dict[str, int]:
    rows = db.conn.execute(
        "SELECT v.package, count(*) FROM files f JOIN builds b USING (build_id)"
        " JOIN versions v USING (version_id) GROUP BY 1"
    )
    return dict(rows.fetchall())


def _published_counts(db: Database) -> dict[str, int]:
    rows = db.conn.execute("SELECT package, files FROM packages WHERE files <> 0")
    return dict(rows.fetchall())


def test_published_file_counts_follow_every_write(db: Database) -> None:
    """The counts behind the index root and search index match the files on record after
    publishing (a filename published twice counts once), removing and retrying."""
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(
        1,
        "foo",
        "2.0",
        "cp39",
        built("foo-2.0-cp39-cp39-linux_x86_64.whl", "foo-2.0-cp39-cp39-linux_armv7l.whl"),
    )
    db.log_build(2, "foo", "2.0", "cp310", built("foo-2.0-cp39-cp39-linux_x86_64.whl"))
    failed_with_a_file = FAILED._replace(files=built("bar-1.0-py3-none-any.whl").files)
    db.log_build(1, "bar", "1.0", "cp39", failed_with_a_file)
    assert _published_counts(db) == _published_by_join(db) == {"foo": 3, "bar": 1}
    assert db.get_indexed_projects() == ["bar", "foo"]
    assert sorted(db.remove_version("foo", "2.0", "")) == [
        "foo-2.0-cp39-cp39-linux_armv7l.whl",
        "foo-2.0-cp39-cp39-linux_x86_64.whl",
    ]
    assert db.retry_failed("bar", "1.0", None) == 1
    assert _published_counts(db) == _published_by_join(db) == {"foo": 1}
    assert db.get_indexed_projects() == ["foo"]
    assert [tuple(e) for e in db.get_search_entries()] == [("foo", "", 2, 1)]


def test_a_version_not_queued_is_not_said_to_wait_for_a_lower_abi(
    db: Database, superuser_dsn: str
) -> None:
    db.set_build_abis(sorted_abis(["cp311"]))
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    with psycopg.connect(superuser_dsn) as conn:  # as if the queue were not worked out yet
        conn.execute("DELETE FROM build_queue")
    project = db.get_project_data("foo")
    assert project is not None
    [only] = project.versions
    assert only.cells["cp311"] == (BuildState.PENDING, "not queued yet", None, None)


def test_a_yanked_releases_files_carry_pypis_reason(db: Database) -> None:
    """PEP 592/691: the uploader's reason reaches the index and pages; none is "" (yanked
    all the same); a release unyanked loses it."""
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(1, "foo", "2.0", "cp39", built("foo-2.0-cp39-cp39-linux_x86_64.whl"))

    def yanks() -> dict[str, str | None]:
        project = db.get_project_data("foo")
        assert project is not None
        return {v.version: v.files[0].yanked for v in project.versions}

    assert yanks() == {"1.0": None, "2.0": None}
    reasons = [
        version("1.0", yanked=True, yanked_reason="broken <b>build</b>"),
        version("2.0", yanked=True),
    ]
    db.set_project("foo", "Foo", 2, "", "", reasons)
    assert yanks() == {"1.0": "broken <b>build</b>", "2.0": ""}
    db.set_project("foo", "Foo", 3, "", "", [version("1.0"), version("2.0")])
    assert yanks() == {"1.0": None, "2.0": None}
