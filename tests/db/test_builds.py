"""Recording builds and their files."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from test_queue import FAILED, built, version, wheel

from piwheels.db.builds import CrossCheckShare, file_rows
from piwheels.db.database import Database
from piwheels.records.builds import BuildOrigin, BuildResult, CrossCheckReport, Dependency


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


def test_slave_ids_are_given_in_blocks_never_twice(db: Database, superuser_dsn: str) -> None:
    first = db.reserve_slave_ids()
    # another master on the same database (or this one restarted) gets the next block
    other = Database(make_conninfo(superuser_dsn, user="piwheels"))
    try:
        assert other.reserve_slave_ids() == first + 1000
    finally:
        other.close()
    assert db.reserve_slave_ids() == first + 2000


def test_a_files_dependencies_are_recorded_in_one_order() -> None:
    result = built("foo-1.0-py3-none-any.whl")
    deps = frozenset({Dependency("pip", "b"), Dependency("apt", "z"), Dependency("pip", "a")})
    result.files[0] = result.files[0]._replace(dependencies=deps, requires_python=">=3.9")
    [row] = file_rows(result)
    assert row["dependencies"] == [["apt", "z"], ["pip", "a"], ["pip", "b"]]
    assert row["filename"] == "foo-1.0-py3-none-any.whl"
    assert row["requires_python"] == ">=3.9"
    assert file_rows(FAILED) == []


def test_a_lost_build_is_given_back_saying_why(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    build_id = db.log_lost_build(3, "foo", "1.0", "cp39", timedelta(minutes=2), "silent for 1m")
    row = db.conn.execute(
        "SELECT outcome, cause, status FROM builds WHERE build_id = %s", (build_id,)
    ).fetchone()
    assert row == ("give-back", "slave-lost", False)
    output = db.get_build_output(build_id)
    assert output == "[piwheels] the slave was lost during the build: silent for 1m\n"


def test_a_build_is_recorded_with_its_builder_and_its_sdist(db: Database) -> None:
    """What a wheel's provenance names (migration 0015): the sdist as the index listed it, the
    builder by its key; read back as the page writer reads them."""
    sdist = "https://files.example/foo-1.0.tar.gz"
    db.set_project(
        "foo", "Foo", 1, "", "", [version("1.0")._replace(sdist_url=sdist, sdist_sha256="a" * 64)]
    )
    origin = BuildOrigin("SHA256:abc", "pi4", "Debian GNU/Linux", "12", "311", "linux_armv7l")
    built = wheel("foo-1.0-py3-none-any.whl")
    build_id = db.log_build(
        7, "foo", "1.0", "cp311", BuildResult(True, timedelta(5), "", [built]), origin
    )
    [row] = db.get_wheel_origins("foo")
    assert (row.filename, row.build_id, row.abi_tag) == (built.filename, build_id, "cp311")
    assert (row.sdist_url, row.sdist_sha256) == (sdist, "a" * 64)
    assert (row.builder_key, row.label, row.os_name, row.os_version) == origin[:4]
    assert (row.py_version_tag, row.duration) == ("311", timedelta(5))
    # a build with no known builder (an older one, say) is listed with blanks
    db.set_project("bar", "Bar", 1, "", "", [version("1.0")])
    db.log_build(
        8,
        "bar",
        "1.0",
        "cp311",
        BuildResult(True, timedelta(1), "", [wheel("bar-1.0-py3-none-any.whl")]),
    )
    [bare] = db.get_wheel_origins("bar")
    assert (bare.builder_key, bare.label, bare.sdist_url) == ("", "", "")


def _publish(db: Database, package: str, key: str, content: str) -> int:
    """A successful build of *package* 1.0 by the builder *key*, its wheel's hash *content*."""
    db.set_project(package, package, 1, "", "", [version("1.0")])
    origin = BuildOrigin(key, key, "Debian", "12", "311", "linux_x86_64")
    built = wheel(f"{package}-1.0-py3-none-any.whl")._replace(filehash=content * 64)
    result = BuildResult(True, timedelta(1), "", [built])
    return db.log_build(1, package, "1.0", "cp311", result, origin)


def _check(db: Database, build_id: int, key: str, content: str | None) -> str:
    """A checker's report on build *build_id* of foo 1.0: its wheel's hash, or no build."""
    files = {} if content is None else {"foo-1.0-py3-none-any.whl": content * 64}
    return db.record_cross_check(CrossCheckReport(build_id, key, content is not None, files))


def test_the_first_builds_of_a_key_and_a_share_of_the_rest_are_checked(
    superuser_dsn: str,
) -> None:
    db = Database(superuser_dsn, cross_checks=CrossCheckShare(first=2, share=0.0))
    try:
        builds = [_publish(db, f"p{n}", "SHA256:a", "1") for n in range(3)]
        opened = {c.build_id: c for c in db.open_cross_checks(100)}
        assert sorted(opened) == builds[:2]  # the first two of that key, not the third
        assert opened[builds[0]].excluded == ["SHA256:a"]  # never checked by its own builder
        # a keyless builder's builds (an insecure queue's) are not checked: nothing to revoke
        _publish(db, "q", "", "1")
        assert sorted(c.build_id for c in db.open_cross_checks(100)) == builds[:2]
        db.cross_checks = CrossCheckShare(first=0, share=1.0)
        later = _publish(db, "r", "SHA256:a", "1")
        assert later in {c.build_id for c in db.open_cross_checks(100)}
    finally:
        db.close()


AGREED_BY_2 = "built identically by 2 builders"
DISAGREED = "disagreement: another builder made other wheels"


@pytest.mark.parametrize(
    ("checks", "verdicts", "shown", "still_open"),
    [
        ([("SHA256:b", "1")], ["agreed"], AGREED_BY_2, False),
        ([("SHA256:b", "2")], ["disagreed"], DISAGREED, True),  # waits for a tie-break
        # a third builder breaks the tie: the first checker was the odd one out ...
        (
            [("SHA256:b", "2"), ("SHA256:c", "1")],
            ["disagreed", "agreed"],
            "built identically by 2 of 3 builders",
            False,
        ),
        # ... or the publisher was
        ([("SHA256:b", "2"), ("SHA256:c", "2")], ["disagreed", "disagreed"], DISAGREED, False),
        # three builders, three results: the backend is not reproducible, and no alarm
        (
            [("SHA256:b", "2"), ("SHA256:c", "3")],
            ["disagreed", "unreproducible"],
            "not reproducible: each builder made other wheels",
            False,
        ),
        (
            [("SHA256:b", None), ("SHA256:c", None)],
            ["pending", "uncheckable"],
            "not checked: other builders could not build it",
            False,
        ),
    ],
)
def test_a_cross_checks_verdict(
    superuser_dsn: str,
    checks: list[tuple[str, str | None]],
    verdicts: list[str],
    shown: str,
    still_open: bool,
) -> None:
    db = Database(superuser_dsn, cross_checks=CrossCheckShare(first=1, share=0.0))
    try:
        build_id = _publish(db, "foo", "SHA256:a", "1")
        assert [_check(db, build_id, key, content) for key, content in checks] == verdicts
        [origin] = db.get_wheel_origins("foo")
        assert origin.cross_check == shown
        project = db.get_project_data("foo")
        assert project is not None
        assert project.files[0].cross_check == shown
        opened = {c.build_id: c.excluded for c in db.open_cross_checks(100)}
        assert (build_id in opened) == still_open
        if still_open:  # nor by a builder that checked it already
            assert opened[build_id] == ["SHA256:b", "SHA256:a"]
    finally:
        db.close()


def test_a_withheld_build_stays_on_record_out_of_the_index_until_released(
    superuser_dsn: str,
) -> None:
    db = Database(superuser_dsn)
    try:
        build_id = _publish(db, "foo", "SHA256:a", "1")
        assert db.withhold_build(build_id) == ["foo-1.0-py3-none-any.whl"]
        assert db.withhold_build(build_id) == []  # once
        project = db.get_project_data("foo")
        assert project is not None
        assert [f.withheld for f in project.files] == [True]  # named on the page, not served
        assert db.get_wheel_origins("foo") == []  # no provenance written for it meanwhile
        assert db.get_file_hashes(["foo-1.0-py3-none-any.whl"])  # its name stays taken
        assert db.release_withheld("foo", "1.0") == ["foo-1.0-py3-none-any.whl"]
        assert db.release_withheld("foo", "1.0") == []
        project = db.get_project_data("foo")
        assert project is not None
        assert [f.withheld for f in project.files] == [False]
    finally:
        db.close()
