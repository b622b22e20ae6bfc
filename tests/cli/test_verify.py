"""piw-verify: a wheel checked against its signed statement and the farm's key, as files in a
farm's output and as URLs on its index, served over real HTTP from 127.0.0.1."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from piwheels.cli import verify
from piwheels.provenance import (
    PUBLIC_KEY_FILE,
    SUFFIX,
    BuildFacts,
    canonical_json,
    key_id,
    public_key_pem,
    sign,
    signing_key,
    statement,
)

WHEEL = "foo-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class Farm:
    output: Path
    wheel: Path
    key: Ed25519PrivateKey

    @property
    def statement(self) -> Path:
        return self.wheel.with_name(WHEEL + SUFFIX)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.wheel.read_bytes()).hexdigest()


@pytest.fixture
def farm(tmp_path: Path) -> Farm:
    """An output tree as the master leaves it: a wheel, its statement, and the public key."""
    output = tmp_path / "output"
    (output / "simple" / "foo").mkdir(parents=True)
    wheel = output / "simple" / "foo" / WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("foo/__init__.py", "VALUE = 1\n")
    key = signing_key(tmp_path / "keys", make=True)
    (output / PUBLIC_KEY_FILE).write_bytes(public_key_pem(key.public_key()))
    facts = BuildFacts(
        filename=WHEEL,
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        size=wheel.stat().st_size,
        package="foo",
        version="1.0",
        abi_tag="none",
        sdist_url="https://files.pythonhosted.org/packages/ab/cd/foo-1.0.tar.gz",
        sdist_sha256=hashlib.sha256(b"the sdist").hexdigest(),
        builder_key="SHA256:" + "B" * 43,
        builder_label="pi4 in the attic",
        builder_os="Debian GNU/Linux 12",
        builder_python="cp311",
        platform_tag="any",
        build_id=42,
        built_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        duration=timedelta(seconds=61),
        log_sha256=hashlib.sha256(b"the log").hexdigest(),
        cross_check="built identically by 2 builders",
        farm_url="http://127.0.0.1:8080",
    )
    wheel.with_name(WHEEL + SUFFIX).write_bytes(sign(statement(facts), key))
    return Farm(output, wheel, key)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site(farm: Farm) -> Iterator[str]:
    """The farm's output served as its web server does, at the base URL given."""
    handler = functools.partial(_QuietHandler, directory=str(farm.output))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = verify.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        verify.main(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_a_wheel_in_an_output_tree_verifies(farm: Farm, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, str(farm.wheel))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"OK {farm.wheel}"
    assert "  package:     foo 1.0" in lines
    builder = f"pi4 in the attic (SHA256:{'B' * 43}), Debian GNU/Linux 12, Python cp311"
    assert f"  builder:     {builder}" in lines
    assert "  cross-check: built identically by 2 builders" in lines
    assert "  built at:    2026-11-22T10:00:00Z (started 2026-11-22T09:58:59Z, build 42)" in lines
    key = key_id(farm.key.public_key())
    assert lines[-1] == f"  signed by:   {key} ({farm.output / PUBLIC_KEY_FILE})"


def test_a_wheel_on_the_index_verifies_over_http(
    farm: Farm, site: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{site}/simple/foo/{WHEEL}#sha256={farm.sha256}"  # as the index links it
    status, out, err = run(capsys, url)
    assert (status, err) == (0, "")
    assert out.startswith(f"OK {url}\n")
    assert out.endswith(f"({site}/{PUBLIC_KEY_FILE})\n")


def test_the_installed_command_verifies(farm: Farm, site: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "piwheels.cli.verify", f"{site}/simple/foo/{WHEEL}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK {site}/simple/foo/{WHEEL}\n")


@pytest.fixture(params=["file", "url"])
def where(request: pytest.FixtureRequest, farm: Farm) -> str:
    """The wheel as a file in the output tree, or as its URL on the index."""
    if request.param == "file":
        return str(farm.wheel)
    site: str = request.getfixturevalue("site")
    return f"{site}/simple/foo/{WHEEL}"


def test_a_tampered_wheel_does_not_verify(
    farm: Farm, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = farm.sha256
    with zipfile.ZipFile(farm.wheel, "a") as archive:
        archive.writestr("foo/evil.py", "import os\n")
    status, out, err = run(capsys, where)
    assert (status, out) == (1, "")
    assert err == (
        f"piw-verify: {where}: the wheel's bytes differ from the ones the farm built "
        f"(its sha256 is {farm.sha256}, the statement's {expected})\n"
    )


def test_a_tampered_statement_does_not_verify(
    farm: Farm, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = json.loads(farm.statement.read_bytes())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["runDetails"]["metadata"]["piwheels_crossCheck"] = "checked by 9"
    envelope["payload"] = base64.b64encode(canonical_json(payload)).decode()
    farm.statement.write_text(json.dumps(envelope))
    status, out, err = run(capsys, where)
    assert (status, out) == (1, "")
    assert err.startswith(f"piw-verify: {where}: the signature does not match: ")
    assert "the statement was changed after it was signed" in err


def test_a_missing_statement_is_named(
    farm: Farm, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    farm.statement.unlink()
    status, out, err = run(capsys, where)
    assert (status, out) == (2, "")
    why = "No such file or directory" if where.startswith("/") else "HTTP 404 File not found"
    assert err == f"piw-verify: cannot read the provenance statement {where}{SUFFIX}: {why}\n"


def test_a_missing_key_is_named(farm: Farm, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    (farm.output / PUBLIC_KEY_FILE).unlink()
    status, out, err = run(capsys, where)
    assert (status, out) == (2, "")
    key = f"{where.partition('/simple/')[0]}/{PUBLIC_KEY_FILE}"
    why = "No such file or directory" if where.startswith("/") else "HTTP 404 File not found"
    assert err == f"piw-verify: cannot read the farm's public key {key}: {why}\n"


def test_a_wheel_outside_an_output_tree_needs_the_key(
    farm: Farm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    wheel = Path(shutil.copy(farm.wheel, downloads))
    shutil.copy(farm.statement, downloads)
    err = usage_error(capsys, str(wheel))
    assert f"{wheel} is not in a farm's output" in err
    assert "give it with --key" in err
    key = str(farm.output / PUBLIC_KEY_FILE)
    assert run(capsys, str(wheel), "--key", key)[0] == 0


def test_the_statement_and_key_may_be_given_as_urls(
    farm: Farm, site: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = Path(shutil.copy(farm.wheel, tmp_path / WHEEL))
    provenance = f"{site}/simple/foo/{WHEEL}{SUFFIX}"
    key = f"{site}/{PUBLIC_KEY_FILE}"
    status, out, _ = run(capsys, str(wheel), "--provenance", provenance, "--key", key)
    assert status == 0
    assert out.startswith(f"OK {wheel}\n")


def test_another_farms_key_does_not_verify(
    farm: Farm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Ed25519PrivateKey.generate()
    (tmp_path / "other.pem").write_bytes(public_key_pem(other.public_key()))
    status, _, err = run(capsys, str(farm.wheel), "--key", str(tmp_path / "other.pem"))
    assert status == 1
    assert err == (
        f"piw-verify: {farm.wheel}: the statement is not signed by the key "
        f"{key_id(other.public_key())} (but by {key_id(farm.key.public_key())})\n"
    )


def test_a_key_that_is_not_one_is_refused(farm: Farm, capsys: pytest.CaptureFixture[str]) -> None:
    (farm.output / PUBLIC_KEY_FILE).write_text("<html>not a key</html>\n")
    status, _, err = run(capsys, str(farm.wheel))
    assert status == 2
    assert err == (
        f"piw-verify: the farm's public key {farm.output / PUBLIC_KEY_FILE}: not a PEM public key\n"
    )


def test_a_farm_that_does_not_answer_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/simple/foo/{WHEEL}"
    status, _, err = run(capsys, url)
    assert status == 2
    assert err.startswith(f"piw-verify: cannot read the wheel {url}: ")
    assert "refused" in err


def test_what_is_not_a_wheel_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "is not a wheel" in usage_error(capsys, str(tmp_path / "foo-1.0.tar.gz"))


def test_a_kept_copy_of_the_key_may_be_named_in_the_config_file(
    farm: Farm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "farm.pem"
    shutil.copy(farm.output / PUBLIC_KEY_FILE, kept)
    (farm.output / PUBLIC_KEY_FILE).write_bytes(
        public_key_pem(Ed25519PrivateKey.generate().public_key())  # the site's, replaced
    )
    config = tmp_path / "piwheels.toml"
    config.write_text(f'[verify]\nkey = "{kept}"\n')
    status, out, _ = run(capsys, str(farm.wheel), "--config", str(config))
    assert status == 0
    assert out.endswith(f"({kept})\n")
    config.write_text('[verify]\nprovenance = "elsewhere.json"\n')  # says what to check this time
    assert "may only be given on the command line" in usage_error(
        capsys, str(farm.wheel), "--config", str(config)
    )
