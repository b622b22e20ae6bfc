"""A directory for one user alone: made so, or why it is not (its callers' tests go further:
master_support/test_local_queues.py, test_builder_keys.py)."""

from __future__ import annotations

from pathlib import Path

from piwheels.private_dirs import private_directory_problem


def test_a_missing_directory_is_made_700(tmp_path: Path) -> None:
    assert private_directory_problem(tmp_path / "a" / "b") is None
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700


def test_what_is_wrong_follows_the_name(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o750)
    assert private_directory_problem(tmp_path / "open") == "is open to other users (mode 750)"
    (tmp_path / "file").write_text("")
    assert private_directory_problem(tmp_path / "file") is not None
    (tmp_path / "link").symlink_to(tmp_path / "open")
    assert private_directory_problem(tmp_path / "link") == "is not a directory"
