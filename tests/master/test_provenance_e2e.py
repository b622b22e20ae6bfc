"""Every published wheel has signed provenance beside it, which piw-verify checks (#19): a real
master, a real slave building real sdists, the output served over HTTP."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm import MasterThread, SlaveProcess, configure, rows, wait_for
from piwheels import provenance
from piwheels.master_support.config import MasterConfig
from piwheels.web.server import OutputServer, serve
from pypi_index import LocalPyPI

BIN = Path(sys.executable).parent
PROJECTS = ["piwtest-pure", "piwtest-cext"]


@pytest.fixture
def farm(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, python311: Path
) -> Iterator[MasterConfig]:
    """A farm that has built PROJECTS with one real slave and written their pages."""
    config = configure(master_dsn, tmp_path, pypi_index, ["cp311"], packages=PROJECTS)
    master = MasterThread(config).start()
    slave = SlaveProcess(config, python311, tmp_path)
    try:
        wait_for(
            lambda: len(rows(config.dsn, "SELECT DISTINCT build_id FROM files")) == 2,
            timeout=240,
            what="both projects built",
        )
        wait_for(lambda: len(statements(config)) == len(wheels(config)), what="statements")
        yield config
    finally:
        slave.stop()
        master.stop()


def wheels(config: MasterConfig) -> list[Path]:
    return sorted((config.output_path / "simple").glob("*/*.whl"))


def statements(config: MasterConfig) -> list[Path]:
    return sorted((config.output_path / "simple").glob(f"*/*.whl{provenance.SUFFIX}"))


def verify(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "piw-verify"), *map(str, argv)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def served(farm: MasterConfig) -> Iterator[OutputServer]:
    with serve(farm.output_path) as server:
        yield server


def test_every_published_wheel_verifies_from_disk_and_over_http(
    farm: MasterConfig, served: OutputServer, pypi_index: LocalPyPI
) -> None:
    key = farm.output_path / provenance.PUBLIC_KEY_FILE
    assert key.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    for wheel in wheels(farm):
        local = verify(wheel)
        assert local.returncode == 0, local.stderr
        assert local.stdout.startswith(f"OK {wheel}")
        url = f"{served.url}/simple/{wheel.parent.name}/{wheel.name}"
        remote = verify(url)
        assert remote.returncode == 0, remote.stderr
    # what a statement says: the sdist as the index lists it, the builder by its key
    wheel = next(w for w in wheels(farm) if w.name.startswith("piwtest_pure"))
    envelope = json.loads(wheel.with_name(wheel.name + provenance.SUFFIX).read_bytes())
    statement = provenance.verify(
        json.dumps(envelope).encode(),
        wheel.name,
        hashlib.sha256(wheel.read_bytes()).hexdigest(),
        provenance.load_public_key(key.read_bytes()),
    )
    text = json.dumps(statement)
    with urllib.request.urlopen(f"{pypi_index.json_url}/piwtest-pure/json", timeout=30) as page:
        listed = json.load(page)["releases"]["1.0"]
    sdist = next(file for file in listed if file["packagetype"] == "sdist")
    assert sdist["digests"]["sha256"] in text and sdist["url"] in text
    builder_key = rows(farm.dsn, "SELECT builder_key FROM build_origins")[0][0]
    assert builder_key.startswith("SHA256:") and builder_key in text


def test_the_project_page_links_each_statement(farm: MasterConfig) -> None:
    page = (farm.output_path / "project" / "piwtest-pure" / "index.html").read_text()
    data = json.loads(
        (farm.output_path / "project" / "piwtest-pure" / "json" / "index.json").read_text()
    )
    for wheel in (w for w in wheels(farm) if w.name.startswith("piwtest_pure")):
        assert f"/simple/piwtest-pure/{wheel.name}{provenance.SUFFIX}" in page
    files = [f for version in data["versions"] for f in version["files"]]
    assert files and all(f["provenance_url"].endswith(provenance.SUFFIX) for f in files)


def test_a_tampered_wheel_or_statement_is_rejected_with_its_reason(
    farm: MasterConfig, tmp_path: Path
) -> None:
    wheel = wheels(farm)[0]
    copy = tmp_path / "copy" / "simple" / wheel.parent.name
    copy.mkdir(parents=True)
    key = farm.output_path / provenance.PUBLIC_KEY_FILE
    shutil.copy(key, tmp_path / "copy" / provenance.PUBLIC_KEY_FILE)
    tampered = copy / wheel.name
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    statement = wheel.with_name(wheel.name + provenance.SUFFIX)
    shutil.copy(statement, copy / statement.name)
    bad_wheel = verify(tampered)
    assert bad_wheel.returncode == 1
    assert "differ from the ones the farm built" in bad_wheel.stderr
    # the wheel intact, its statement edited: the signature no longer holds
    shutil.copy(wheel, tampered)
    envelope = json.loads(statement.read_bytes())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["buildDefinition"]["externalParameters"]["abi"] = "cp27"
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    (copy / statement.name).write_text(json.dumps(envelope))
    bad_statement = verify(tampered)
    assert bad_statement.returncode == 1
    assert "changed after it was signed" in bad_statement.stderr
