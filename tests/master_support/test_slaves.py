"""What the Slave Driver knows of a slave, and how it judges the files a slave reports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from farm import file_state
from piwheels.master_support.slaves import SlaveRecord, check_files, file_problem
from piwheels.records.builds import BuildResult, FileState, PackageVersion
from piwheels.records.slaves import SlaveHello, SlaveState

HELLO = SlaveHello(
    timedelta(hours=1), timedelta(minutes=5), "311", "cp311", "linux_armv7l", "pi4", *["x"] * 4
)
PURE = file_state("foo-1.0-py3-none-any.whl", b"pure")
CEXT = file_state("foo-1.0-cp311-cp311-linux_armv7l.whl", b"cext")


def built(*files: FileState, status: bool = True) -> BuildResult:
    return BuildResult(status, timedelta(seconds=5), "log", list(files))


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        (PURE._replace(filename="../foo-1.0-py3-none-any.whl"), "it holds a path"),
        (PURE._replace(filename=".foo-1.0-py3-none-any.whl"), "it holds a path"),
        (PURE._replace(filename="foo-1.0.tar.gz"), "not a wheel filename"),
        (PURE._replace(filename="bar-1.0-py3-none-any.whl"), "it is a wheel of bar, not foo"),
        (PURE._replace(filename="foo-2.0-py3-none-any.whl"), "version 2.0, not 1.0"),
        (PURE._replace(filehash="A" * 64), "its SHA256 is not 64 lower-case hex digits"),
        (PURE._replace(filesize=0), "implausible size 0"),
        (PURE._replace(abi_tag="cp311"), "its reported tags do not match its filename"),
        (PURE._replace(requires_python="x" * 501), "requires_python is longer than 500"),
        (PURE._replace(filename="foo-1.0-" + ".".join(["py3"] * 21) + "-none-any.whl"), "dots"),
    ],
)
def test_a_file_that_cannot_be_this_versions_wheel_says_why(file: FileState, problem: str) -> None:
    found = file_problem("foo", "1.0", file)
    assert found is not None and problem in found


def test_a_wheel_is_judged_by_canonical_names_and_versions() -> None:
    assert file_problem("Foo", "1.0", PURE) is None
    assert file_problem("foo", "1.0.0", PURE) is None
    assert file_problem("foo", "1.0", CEXT) is None


def test_refused_files_are_taken_off_the_result_and_noted_in_its_log() -> None:
    bad = PURE._replace(filename="bar-1.0-py3-none-any.whl")
    result, refusals = check_files("foo", "1.0", built(CEXT, bad, CEXT))
    assert result.files == [CEXT] and result.status
    assert refusals == [
        "refused file 'bar-1.0-py3-none-any.whl' of foo 1.0: it is a wheel of bar, not foo",
        f"refused file {CEXT.filename!r} of foo 1.0: it is listed twice",
    ]
    assert result.output.endswith(f"\npiwheels: {refusals[1]}")
    assert check_files("foo", "1.0", built(PURE)) == (built(PURE), [])


def test_a_success_left_without_files_or_a_failure_with_some_is_a_failure() -> None:
    bad = PURE._replace(filesize=-1)
    result, _ = check_files("foo", "1.0", built(bad))
    assert not result.status and result.files == []
    result, refusals = check_files("foo", "1.0", built(PURE, status=False))
    assert refusals == [f"refused file {PURE.filename!r} of foo 1.0: the build failed"]
    assert result.files == []


def test_only_files_not_yet_published_are_fetched() -> None:
    record = SlaveRecord(3, b"\x01slave", HELLO)
    record.result = built(PURE, CEXT)
    result, to_send = record.plan_transfers({PURE.filename: PURE.filehash})
    assert to_send == [CEXT] == record.to_send
    assert result.status and result.files == [PURE, CEXT]


def test_a_published_name_with_other_bytes_fails_the_build() -> None:
    record = SlaveRecord(3, b"\x01slave", HELLO)
    record.result = built(PURE, CEXT)
    result, to_send = record.plan_transfers({PURE.filename: "f" * 64})
    assert to_send == [] and not result.status and result.files == []
    assert "published files never change" in result.output
    assert record.result == result


def test_a_slave_as_monitors_see_it() -> None:
    record = SlaveRecord(3, b"\x01slave", HELLO, peer="10.0.0.3")
    assert str(record) == "slave 3 (pi4)"
    assert record.status().state == "hello" and record.status().build is None
    record.start_build(("foo", "1.0", "cp311"))
    status = record.status()
    assert (status.state, status.build) == (SlaveState.BUILDING, PackageVersion("foo", "1.0"))
    assert status.build_started is not None and status.build_started >= status.first_seen
    record.end_build()
    assert record.state == SlaveState.IDLE and record.build is None and record.to_send == []


def test_the_same_machine_on_another_connection() -> None:
    first = SlaveRecord(3, b"\x01a", HELLO, peer="10.0.0.3")
    assert first.same_machine(SlaveRecord(9, b"\x01b", HELLO, peer="10.0.0.3"))
    assert not first.same_machine(SlaveRecord(9, b"\x01b", HELLO, peer="10.0.0.4"))
    other_abi = HELLO._replace(abi_tag="cp39")
    assert not first.same_machine(SlaveRecord(9, b"\x01b", other_abi, peer="10.0.0.3"))
