"""The real pip and the real uv install from an index that piwheels.web.server serves.

The wheels are real: pip builds piwtest-cext (a C extension) and piwtest-pure (which depends on
it) from the local PyPI's sdists, and the renderers write the index around them, as the farm
would. Each client runs in a fresh virtualenv with none of this machine's pip or uv settings;
what it fetched is read back from the server's request log.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from outputs import publish

from clients import client_env, new_venv, run, uv_binary
from piwheels.web.http_headers import JSON_TYPE
from piwheels.web.request_handler import LoggedRequest
from piwheels.web.server import OutputServer, serve
from pypi_index import LocalPyPI, SdistFactory, make_wheel, pip_wheels

# Two versions of each, so that a client that fetched what it did not need would show it.
BUILT = (
    ("piwtest-cext", "1.0"),
    ("piwtest-cext", "1.1"),
    ("piwtest-pure", "1.0"),
    ("piwtest-pure", "1.1"),
)
CHECK = (
    "import importlib.metadata as m, piwtest_cext, piwtest_pure;"
    "assert piwtest_cext.add(2, 3) == 5;"
    "print(piwtest_pure.greet(), m.version('piwtest-pure'), m.version('piwtest-cext'))"
)


class Site(NamedTuple):
    server: OutputServer
    root: Path


@pytest.fixture(scope="module")
def wheels(
    tmp_path_factory: pytest.TempPathFactory, test_sdists: SdistFactory, build_deps_dir: Path
) -> list[Path]:
    """Real wheels of BUILT for this interpreter, plus one for another ABI no client may take."""
    work = tmp_path_factory.mktemp("client-wheels")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work) as index:
        for project, version in BUILT:
            index.add_version(project, version)
        # One pip run per version: a run takes one version of each project.
        for version in sorted({version for _, version in BUILT}):
            wanted = [(project, v) for project, v in BUILT if v == version]
            result = pip_wheels(Path(sys.executable), index.simple_url, wanted, work / "wheels")
            assert result.returncode == 0, result.stdout
    built = sorted((work / "wheels").glob("*.whl"))
    assert len(built) == len(BUILT), [path.name for path in built]
    other_abi = make_wheel(
        "piwtest-cext", "1.1", work / "other", tag="cp39-cp39-manylinux_2_17_x86_64"
    )
    return [*built, other_abi]


@pytest.fixture(scope="session")
def uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return uv_binary(tmp_path_factory.mktemp("uv"))


def site(root: Path, wheels: list[Path], *, metadata: bool) -> Iterator[Site]:
    publish(root, wheels, metadata=metadata)
    with serve(root) as server:
        yield Site(server, root)


@pytest.fixture
def with_metadata(tmp_path: Path, wheels: list[Path]) -> Iterator[Site]:
    yield from site(tmp_path / "www", wheels, metadata=True)


@pytest.fixture
def without_metadata(tmp_path: Path, wheels: list[Path]) -> Iterator[Site]:
    yield from site(tmp_path / "www", wheels, metadata=False)


def requested(server: OutputServer) -> list[LoggedRequest]:
    assert server.wait_idle()
    return server.requests


def wheel_requests(entries: list[LoggedRequest]) -> set[tuple[str, str, int]]:
    return {
        (entry.method, entry.path.rsplit("/", 1)[-1], entry.status)
        for entry in entries
        if entry.path.endswith(".whl")
    }


def expected_wheels(root: Path) -> set[str]:
    """The two wheels a Python like this one installs for piwtest-pure: the newest of each."""
    pure = {path.name for path in root.glob("simple/piwtest-pure/*-1.1-*.whl")}
    cext = {path.name for path in root.glob("simple/piwtest-cext/*-1.1-cp3*-linux_*.whl")}
    assert len(pure) == len(cext) == 1, (pure, cext)
    return pure | cext


def test_pip_installs_with_hashes_from_the_index(with_metadata: Site, tmp_path: Path) -> None:
    server = with_metadata.server
    lines = []
    for project in ("piwtest-pure", "piwtest-cext"):
        request = urllib.request.Request(
            f"{server.url}/simple/{project}/", headers={"Accept": JSON_TYPE}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            page = json.load(response)
        hashes = [
            f"--hash=sha256:{file['hashes']['sha256']}"
            for file in page["files"]
            if "-1.1-" in file["filename"]
        ]
        lines.append(f"{project}==1.1 {' '.join(hashes)}")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    env = client_env(tmp_path)
    python = new_venv(tmp_path / "venv", env, with_pip=True)
    server.clear_requests()
    run(
        [
            python, "-m", "pip", "install", "--no-cache-dir",
            "--index-url", f"{server.url}/simple/",
            "--require-hashes", "-r", requirements,
        ],
        env,
    )  # fmt: skip
    assert run([python, "-c", CHECK], env).split() == [
        "hello",
        "from",
        "piwtest-pure",
        "1.1",
        "1.1",
    ]
    entries = requested(server)
    # Only the files installed were downloaded: not the other ABI's, not the old versions'.
    downloaded = {name for method, name, status in wheel_requests(entries) if status == 200}
    assert downloaded == expected_wheels(with_metadata.root)
    assert all(entry.status in {200, 304} for entry in entries), entries


def test_uv_resolves_from_the_metadata_files(with_metadata: Site, tmp_path: Path, uv: Path) -> None:
    server = with_metadata.server
    env = client_env(tmp_path)
    python = new_venv(tmp_path / "venv", env, with_pip=False)
    server.clear_requests()
    run(
        [uv, "pip", "install", "--no-config", "--python", python, "--color", "never",
         "--index-url", f"{server.url}/simple/", "piwtest-pure"],
        env,
    )  # fmt: skip
    assert run([python, "-c", CHECK], env).split()[-2:] == ["1.1", "1.1"]
    entries = requested(server)
    pages = [entry for entry in entries if entry.path.startswith("/simple/piwtest-")]
    assert {entry.path for entry in pages if entry.path.endswith("/")} == {
        "/simple/piwtest-pure/",
        "/simple/piwtest-cext/",
    }
    assert all(JSON_TYPE in (entry.accept or "") for entry in pages if entry.path.endswith("/"))
    installed = expected_wheels(with_metadata.root)
    metadata = {
        entry.path.rsplit("/", 1)[-1].removesuffix(".metadata")
        for entry in entries
        if entry.path.endswith(".metadata") and entry.status == 200
    }
    assert metadata == installed
    # Resolved from the .metadata files: each wheel installed was fetched once, whole; no
    # ranges, and nothing else.
    assert wheel_requests(entries) == {("GET", name, 200) for name in installed}
    assert sum(entry.path.endswith(".whl") for entry in entries) == len(installed)


def test_uv_reads_metadata_by_range_without_metadata_files(
    without_metadata: Site, tmp_path: Path, uv: Path
) -> None:
    server = without_metadata.server
    assert not list(without_metadata.root.rglob("*.metadata"))
    env = client_env(tmp_path)
    python = new_venv(tmp_path / "venv", env, with_pip=False)
    server.clear_requests()
    run(
        [uv, "pip", "install", "--no-config", "--python", python, "--color", "never",
         "--index-url", f"{server.url}/simple/", "piwtest-pure"],
        env,
    )  # fmt: skip
    assert run([python, "-c", CHECK], env).split()[-2:] == ["1.1", "1.1"]
    entries = requested(server)
    installed = expected_wheels(without_metadata.root)
    ranged = {name for _, name, status in wheel_requests(entries) if status == 206}
    assert ranged == installed, entries
    assert not [entry for entry in entries if entry.path.endswith(".metadata")]
    assert {name for _, name, _ in wheel_requests(entries)} == installed
