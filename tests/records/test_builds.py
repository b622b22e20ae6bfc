"""A build's records: the order their fields travel in, and the states the pages show."""

from __future__ import annotations

import json
from datetime import timedelta

from piwheels.failures import Cause, Diagnosis, Outcome
from piwheels.records.builds import (
    BuildResult,
    BuildState,
    Dependency,
    FileState,
    PackageVersion,
    QueueSnapshot,
)


def test_a_file_keeps_the_specs_nine_fields_first() -> None:
    # a wheel travels as a plain array: the original piwheels reads these nine by position
    assert FileState._fields == (
        "filename",
        "filesize",
        "filehash",
        "package_tag",
        "package_version_tag",
        "py_version_tag",
        "abi_tag",
        "platform_tag",
        "dependencies",
        "requires_python",
    )


def test_a_result_without_a_diagnosis_is_an_original_slaves() -> None:
    result = BuildResult(False, timedelta(seconds=3), "log", [])
    assert result.diagnosis is None
    assert BuildResult._fields[:4] == ("status", "duration", "output", "files")
    diagnosis = Diagnosis(Cause.NETWORK, "could not reach PyPI")
    assert result._replace(diagnosis=diagnosis).diagnosis is diagnosis


def test_dependencies_spelt_alike_are_one() -> None:
    deps = frozenset({Dependency("apt", "libc6"), Dependency("apt", "libc6"), ("pip", "x")})
    assert deps == {("apt", "libc6"), Dependency("pip", "x")}
    assert PackageVersion("numpy", "2.0") == ("numpy", "2.0")


def test_every_outcome_of_a_build_is_a_state_spelt_alike() -> None:
    # the database records an outcome, the pages show it as the (version, ABI)'s state
    for outcome in Outcome:
        assert BuildState(outcome.value) == outcome


def test_a_state_is_its_string_wherever_it_is_written() -> None:
    assert BuildState.DEP_WAIT == "dep-wait"
    assert f"{BuildState.GIVE_BACK}" == "give-back"
    assert json.dumps({"state": BuildState.COVERED}) == '{"state": "covered"}'
    assert len(set(BuildState)) == len({state.value for state in BuildState})


def test_a_snapshot_read_before_any_build_knows_of_none() -> None:
    snapshot = QueueSnapshot({"cp311": [PackageVersion("foo", "1.0")]}, {"cp311": 1})
    assert snapshot.last_build == 0
