"""piw-trust: adding, listing and revoking builder keys, as an operator does (#19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from piwheels.builder_keys import MASTER_KEY, SLAVE_KEY, TRUSTED, TrustedKeys, key_pair
from piwheels.cli import trust


def run(capsys: pytest.CaptureFixture[str], key_dir: Path, *argv: str) -> tuple[int, str, str]:
    status = trust.main(["--key-dir", str(key_dir), *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_add_list_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    slave, _ = key_pair(tmp_path / "slave", SLAVE_KEY)
    other, _ = key_pair(tmp_path / "other", SLAVE_KEY)
    slave_file = tmp_path / "slave" / f"{SLAVE_KEY}.key"  # as the slave's operator sends it
    assert run(capsys, keys, "add", str(slave_file), "--label", "pi4 in the attic")[:2] == (
        0,
        f"trusted {slave.fingerprint} pi4 in the attic\n",
    )
    assert run(capsys, keys, "add", other.public.decode())[0] == 0
    status, out, _ = run(capsys, keys, "list")
    lines = out.splitlines()
    assert status == 0 and len(lines) == 2
    assert lines[0].startswith(f"{slave.fingerprint}  {slave.public.decode()}  ")
    assert lines[0].endswith("  pi4 in the attic")
    assert lines[1].startswith(other.fingerprint)
    assert run(capsys, keys, "revoke", slave.fingerprint)[:2] == (
        0,
        f"revoked {slave.fingerprint} pi4 in the attic\n",
    )
    remaining = TrustedKeys(keys / TRUSTED)
    assert remaining.is_trusted(slave.public) is None
    assert remaining.is_trusted(other.public) is not None
    # what was trusted stays on record
    assert len(list((keys / TRUSTED / "revoked").glob("*.key"))) == 1


def test_master_prints_the_masters_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    status, _, err = run(capsys, keys, "master")
    assert status == 1 and "no key pair 'master'" in err  # never made by this tool
    pair, _ = key_pair(keys, MASTER_KEY)  # the master's first start
    assert run(capsys, keys, "master")[:2] == (0, f"{pair.public.decode()}  {pair.fingerprint}\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "not-a-key"], "is neither a public key nor a key file"),
        (["add", "~" * 40], "is not a CurveZMQ public key"),
        (["revoke", "SHA256:nothing"], "no trusted key SHA256:nothing"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, tmp_path / "keys", *argv)
    assert status == 1 and not out
    assert err.startswith("piw-trust: ") and message in err


def test_a_key_directory_open_to_others_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    slave, _ = key_pair(tmp_path / "slave", SLAVE_KEY)
    status, _, err = run(capsys, keys, "add", slave.public.decode())
    assert status == 1 and "open to other users" in err
