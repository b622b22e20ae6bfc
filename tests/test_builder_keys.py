"""Builder keys (#19): key pairs made once and kept private, fingerprints, and the master's
trusted directory, which notices keys added and revoked while it runs."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import zmq

from piwheels.builder_keys import (
    KeyFileError,
    TrustedKeys,
    fingerprint,
    key_pair,
    public_key,
)

ROOT = os.geteuid() == 0


def test_a_key_pair_is_made_once_private_then_kept(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    pair, made = key_pair(keys, "slave")
    assert made
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "slave.key_secret").stat().st_mode) == 0o600
    again, made = key_pair(keys, "slave")
    assert (again, made) == (pair, False)
    assert fingerprint(pair.public) == pair.fingerprint
    assert pair.fingerprint.startswith("SHA256:")
    assert len(pair.fingerprint) == len("SHA256:") + 43


def test_a_secret_made_readable_by_others_is_made_private_again(tmp_path: Path) -> None:
    key_pair(tmp_path / "keys", "master")
    (tmp_path / "keys" / "master.key_secret").chmod(0o644)
    key_pair(tmp_path / "keys", "master")
    assert stat.S_IMODE((tmp_path / "keys" / "master.key_secret").stat().st_mode) == 0o600


def test_keys_in_a_directory_open_to_others_are_refused(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir(mode=0o755)
    (tmp_path / "open").chmod(0o755)
    with pytest.raises(KeyFileError, match="open to other users"):
        key_pair(tmp_path / "open", "slave")


def test_a_public_key_is_taken_as_text_or_from_its_file(tmp_path: Path) -> None:
    pair, _ = key_pair(tmp_path / "keys", "slave")
    assert public_key(pair.public.decode()) == pair.public
    assert public_key(str(tmp_path / "keys" / "slave.key")) == pair.public
    for bad in ("~" * 40, "short", str(tmp_path / "missing.key")):
        with pytest.raises(KeyFileError):
            public_key(bad)


def test_trusted_keys_are_added_listed_and_revoked(tmp_path: Path) -> None:
    trusted = TrustedKeys(tmp_path / "trusted")
    one, _ = key_pair(tmp_path / "a", "slave")
    two, _ = key_pair(tmp_path / "b", "slave")
    assert trusted.is_trusted(one.public) is None
    added = trusted.add(one.public, 'pi4 "rack 2"\nsecond line')
    assert added.label == "pi4 'rack 2' second line"  # one line, quotes that cannot break out
    trusted.add(two.public, "pi5")
    assert [key.fingerprint for key in trusted.list()] == [one.fingerprint, two.fingerprint]
    assert trusted.is_trusted(one.public) == added
    trusted.revoke(one.fingerprint)
    assert trusted.is_trusted(one.public) is None  # noticed at once, without a restart
    assert trusted.is_trusted(two.public) is not None
    assert (tmp_path / "trusted" / "revoked").is_dir()
    with pytest.raises(KeyFileError, match="no trusted key"):
        trusted.revoke(one.fingerprint)
    trusted.add(one.public, "pi4 again")  # trusted anew
    assert trusted.is_trusted(one.public) is not None


def test_a_trusted_key_file_is_a_zeromq_certificate(tmp_path: Path) -> None:
    trusted = TrustedKeys(tmp_path / "trusted")
    pair, _ = key_pair(tmp_path / "keys", "slave")
    trusted.add(pair.public, "pi4")
    [path] = (tmp_path / "trusted").glob("*.key")
    assert zmq.auth.load_certificate(path) == (pair.public, None)


@pytest.mark.skipif(not ROOT, reason="needs another user to run as (setpriv as root)")
def test_another_user_cannot_read_a_secret_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    key_pair(keys, "master")
    tmp_path.chmod(0o755)  # the way to it open, as a home directory may be
    read = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "cat",
            str(keys / "master.key_secret"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert read.returncode != 0
    assert "Permission denied" in read.stderr
