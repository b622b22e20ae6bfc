"""Which account runs PostgreSQL for root, and its way to its files."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from piwheels.db.embedded import EmbeddedPostgresError
from piwheels.db.embedded.account import choose_account, grant_search

NOBODY = pwd.getpwnam("nobody")


def test_the_account_asked_for_is_the_one_chosen(tmp_path: Path) -> None:
    assert choose_account(tmp_path / "data", "nobody") == NOBODY


def test_a_cluster_keeps_the_owner_it_was_made_with(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory away")
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, NOBODY.pw_uid, NOBODY.pw_gid)
    assert choose_account(data, None) == NOBODY


def test_a_new_cluster_runs_as_the_first_service_account(tmp_path: Path) -> None:
    first = next(
        (account for name in ("postgres", "pgserver", "nobody") for account in _named(name)),
        None,
    )
    if first is None:
        pytest.skip("none of the service accounts exists here")
    assert choose_account(tmp_path / "data", None) == first


def _named(name: str) -> list[pwd.struct_passwd]:
    try:
        return [pwd.getpwnam(name)]
    except KeyError:
        return []


def test_never_root(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match="refuses to run as root"):
        choose_account(tmp_path / "data", "root")
    with pytest.raises(EmbeddedPostgresError, match=r"none of the accounts \['no-such-user'\]"):
        choose_account(tmp_path / "data", "no-such-user")


def test_every_directory_above_is_made_traversable_and_no_more(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    inner = closed / "inner"
    inner.mkdir(parents=True)
    closed.chmod(0o700)
    inner.chmod(0o750)
    grant_search(inner / "data", NOBODY)
    assert stat.S_IMODE(closed.stat().st_mode) == 0o701  # search, never read
    assert stat.S_IMODE(inner.stat().st_mode) == 0o751
    before = {path: path.stat().st_mode for path in (closed, inner)}
    grant_search(inner / "data", NOBODY)  # already allowed: nothing changes
    assert {path: path.stat().st_mode for path in (closed, inner)} == before
