"""Operators' repairs by hand: adding, removing, skipping and retrying, and what each does to
the queue."""

from __future__ import annotations

import psycopg
import pytest
from test_queue import FAILED, built, queue_of, version

from piwheels.db.database import Database


def test_a_package_and_a_version_added_by_hand_exist(db: Database) -> None:
    assert not db.package_exists("foo")
    db.add_by_hand("foo", None, "")
    assert db.package_exists("foo") and not db.version_exists("foo", "1.0")
    assert queue_of(db) == {}
    db.add_by_hand("foo", "1.0", "")
    db.add_by_hand("foo", "1.0", "")  # again: nothing more
    assert db.version_exists("foo", "1.0")
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_a_version_added_skipped_is_never_queued(db: Database) -> None:
    db.add_by_hand("foo", "1.0", "built elsewhere")
    assert db.version_exists("foo", "1.0")
    assert queue_of(db) == {}
    db.set_skip("foo", "1.0", "")
    # the package it made was added with the same reason
    assert queue_of(db) == {}
    db.set_skip("foo", None, "")
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_removing_a_version_says_which_files_to_delete(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_armv7l.whl"))
    db.log_build(1, "foo", "1.0", "cp310", FAILED)
    assert db.remove_version("foo", "1.0", "") == ["foo-1.0-cp39-cp39-linux_armv7l.whl"]
    assert db.get_file_hashes(["foo-1.0-cp39-cp39-linux_armv7l.whl"]) == {}
    # its builds gone with them, it is built again from the lowest ABI
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}
    assert db.remove_version("foo", "1.0", "breaks the builders") == []
    assert queue_of(db) == {}
    assert db.version_exists("foo", "1.0")


def test_a_skipped_project_leaves_the_queue_until_its_skip_is_cleared(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_skip("foo", None, "too big")
    assert queue_of(db) == {}
    db.set_skip("foo", None, "")
    assert queue_of(db) == {"cp39": [("foo", "2.0"), ("foo", "1.0")]}
    with pytest.raises(psycopg.errors.NoDataFound, match="no such package: bar"):
        db.set_skip("bar", None, "never")


def test_a_yanked_version_leaves_the_queue_and_comes_back(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.set_yanked("foo", "1.0", True)
    assert queue_of(db) == {}
    db.set_yanked("foo", "1.0", False)
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_failed_builds_are_forgotten_on_one_abi_or_all(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    for abi in ("cp39", "cp310", "cp311"):
        db.log_build(1, "foo", "1.0", abi, FAILED)
    assert queue_of(db) == {"cp313": [("foo", "1.0")]}
    assert db.retry_failed("foo", "1.0", "cp310") == 1
    assert queue_of(db) == {"cp310": [("foo", "1.0")]}
    assert db.retry_failed("foo", "1.0", None) == 2
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}
    assert db.retry_failed("foo", "1.0", None) == 0


def test_a_repair_of_a_version_not_on_record_is_refused(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    for package, error in (("foo", "no such version: foo 2.0"), ("bar", "no such package: bar")):
        with pytest.raises(psycopg.errors.NoDataFound, match=error):
            db.remove_version(package, "2.0", "")
        with pytest.raises(psycopg.errors.NoDataFound, match=error):
            db.retry_failed(package, "2.0", None)
        with pytest.raises(psycopg.errors.NoDataFound, match=error):
            db.set_yanked(package, "2.0", True)
    assert not db.package_exists("bar")


def test_a_cause_no_one_knows_is_refused_before_the_database(db: Database) -> None:
    with pytest.raises(ValueError, match="no such cause: broken"):
        db.retry_cause("broken", None)
