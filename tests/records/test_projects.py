"""The records the web output is made from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from piwheels.records.builds import BuildState
from piwheels.records.projects import AbiCell, BuildInfo, ProjectData, VersionInfo, WheelFile

WHEN = datetime(2026, 12, 7, tzinfo=UTC)


def wheel(filename: str) -> WheelFile:
    return WheelFile(filename, 1, "0" * 64, None, WHEN, None, None, "cp311", ())


def version(number: str, *filenames: str) -> VersionInfo:
    files = [wheel(name) for name in filenames]
    return VersionInfo(number, WHEN, False, "", {}, [], files)


def test_a_projects_files_are_its_versions_newest_first() -> None:
    project = ProjectData(
        "foo",
        "Foo",
        "",
        "",
        ["cp39", "cp311"],
        [
            version("2.0", "foo-2.0-cp311-cp311-linux_armv7l.whl", "foo-2.0-cp39-cp39-any.whl"),
            version("1.1"),
            version("1.0", "foo-1.0-py3-none-any.whl"),
        ],
    )
    assert [file.filename for file in project.files] == [
        "foo-2.0-cp311-cp311-linux_armv7l.whl",
        "foo-2.0-cp39-cp39-any.whl",
        "foo-1.0-py3-none-any.whl",
    ]
    assert project._replace(versions=[]).files == []


def test_a_cell_waits_nowhere_unless_queued() -> None:
    cell = AbiCell(BuildState.PENDING, "not queued yet", None)
    assert cell.place is None


def test_a_build_stands_as_built_unless_it_says_otherwise() -> None:
    build = BuildInfo(7, "cp311", True, WHEN, timedelta(seconds=9), 1)
    assert (build.outcome, build.cause, build.summary, build.needs) == ("built", None, "", ())
    assert build.retry_at is None and not build.requeued
