"""The test infrastructure itself, with real parts: PostgreSQL, the local index, and real pips."""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sysconfig
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import parse_wheel_filename

from pypi_index import (
    HTML_V1_TYPE,
    JSON_TYPE,
    TEXT_HTML,
    LocalPyPI,
    SdistFactory,
    find_python,
    negotiate,
    pip_wheels,
    read_metadata,
)

PIP_ACCEPT = f"{JSON_TYPE}, {HTML_V1_TYPE}; q=0.1, {TEXT_HTML}; q=0.01"
PLATFORM = sysconfig.get_platform().replace("-", "_").replace(".", "_")


def get(url: str, accept: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """GET *url* without following redirects."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def get_json(url: str, accept: str = JSON_TYPE) -> tuple[http.client.HTTPMessage, dict]:
    status, headers, body = get(url, accept)
    assert status == 200, (url, status, body)
    return headers, json.loads(body)


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(body: bytes) -> list[dict[str, str | None]]:
    parser = Anchors()
    parser.feed(body.decode())
    return parser.anchors


# PostgreSQL ---------------------------------------------------------------------------------------


def test_fresh_database_is_empty(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
    assert name is not None
    assert name[0].startswith("test_")
    assert tables == (0,)


# The local index -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, TEXT_HTML),
        ("*/*", TEXT_HTML),
        (PIP_ACCEPT, JSON_TYPE),
        (TEXT_HTML, TEXT_HTML),
        (HTML_V1_TYPE, HTML_V1_TYPE),
        (f"{JSON_TYPE}; q=0.2, {TEXT_HTML}", TEXT_HTML),
        (f"{JSON_TYPE}, {TEXT_HTML}", JSON_TYPE),
        ("application/*", HTML_V1_TYPE),
        ("application/json", None),
        (f"{JSON_TYPE}; q=0", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_simple_index_json_and_html(pypi_index: LocalPyPI) -> None:
    headers, index = get_json(pypi_index.simple_url)
    assert headers["Content-Type"] == JSON_TYPE
    assert headers["X-PyPI-Last-Serial"] == str(pypi_index.serial)
    assert index["meta"] == {"api-version": "1.1", "_last-serial": pypi_index.serial}
    serials = {project["name"]: project["_last-serial"] for project in index["projects"]}
    assert {"piwtest-pure", "piwtest-cext", "piwtest-abi3", "piwtest-broken"} <= serials.keys()
    assert {"piwtest-py311", "setuptools"} <= serials.keys()
    assert serials["piwtest-pure"] == pypi_index.project_serial("piwtest-pure")

    status, headers, body = get(pypi_index.simple_url)
    assert status == 200
    assert headers["Content-Type"] == TEXT_HTML
    assert headers["X-PyPI-Last-Serial"] == str(pypi_index.serial)
    assert {"href": "/simple/piwtest-pure/"} in anchors(body)

    status, headers, _ = get(pypi_index.simple_url, "application/json")
    assert status == 406
    status, headers, _ = get(pypi_index.simple_url + f"?format={JSON_TYPE}")
    assert headers["Content-Type"] == JSON_TYPE


def test_project_page_json(pypi_index: LocalPyPI) -> None:
    headers, page = get_json(pypi_index.simple_url + "piwtest-pure/", PIP_ACCEPT)
    assert headers["X-PyPI-Last-Serial"] == str(pypi_index.project_serial("piwtest-pure"))
    assert page["meta"]["api-version"] == "1.1"
    assert page["name"] == "piwtest-pure"
    assert page["versions"] == ["1.0", "1.1"]
    files = {file["filename"]: file for file in page["files"]}
    # Named by whichever setuptools made them (newer ones write piwtest_pure-1.0.tar.gz).
    sdist_10, sdist_11 = pypi_index.sdists.build([("piwtest-pure", "1.0"), ("piwtest-pure", "1.1")])
    assert files.keys() == {sdist_10.name, sdist_11.name}
    good, yanked = files[sdist_10.name], files[sdist_11.name]
    assert good["yanked"] is False
    assert yanked["yanked"] == "broken release, use 1.0"
    assert good["requires-python"] == ">=3.8"
    assert good["upload-time"].endswith("Z")
    with urllib.request.urlopen(good["url"], timeout=10) as response:
        data = response.read()
    assert good["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert good["size"] == len(data)

    _, page = get_json(pypi_index.simple_url + "piwtest-py311/")
    assert page["files"][0]["requires-python"] == ">=3.11"


def test_project_page_html(pypi_index: LocalPyPI) -> None:
    status, headers, body = get(pypi_index.simple_url + "piwtest-pure/", HTML_V1_TYPE)
    assert status == 200
    assert headers["Content-Type"] == HTML_V1_TYPE
    # Escaped in the markup, as PEP 503 requires; the parser below unescapes it again.
    assert b'data-requires-python="&gt;=3.8"' in body
    links = {anchor["href"].rsplit("/", 1)[1]: anchor for anchor in anchors(body)}  # type: ignore[union-attr]
    _, page = get_json(pypi_index.simple_url + "piwtest-pure/")
    for file in page["files"]:
        anchor = links[f"{file['filename']}#sha256={file['hashes']['sha256']}"]
        assert anchor["data-requires-python"] == ">=3.8"
        if file["yanked"]:
            assert anchor["data-yanked"] == file["yanked"]
        else:
            assert "data-yanked" not in anchor


def test_names_are_normalised_by_redirect(pypi_index: LocalPyPI) -> None:
    for path in ("PiwTest_Pure/", "piwtest.pure/", "piwtest-pure"):
        status, headers, _ = get(pypi_index.simple_url + path)
        assert status == 301
        assert headers["Location"] == "/simple/piwtest-pure/"
    status, _, _ = get(pypi_index.simple_url + "no-such-project/")
    assert status == 404
    status, headers, _ = get(f"{pypi_index.json_url}/PiwTest_Pure/json")
    assert (status, headers["Location"]) == (301, "/pypi/piwtest-pure/json")


def test_json_api(pypi_index: LocalPyPI) -> None:
    headers, document = get_json(f"{pypi_index.json_url}/piwtest-pure/json", "application/json")
    assert headers["X-PyPI-Last-Serial"] == str(document["last_serial"])
    assert document["last_serial"] == pypi_index.project_serial("piwtest-pure")
    info = document["info"]
    # 1.1 is newer but yanked.
    assert (info["name"], info["version"], info["requires_python"]) == (
        "piwtest-pure",
        "1.0",
        ">=3.8",
    )
    assert info["summary"].startswith("piwheels test package")
    assert document["releases"].keys() == {"1.0", "1.1"}
    (sdist,) = document["releases"]["1.1"]
    assert sdist["packagetype"] == "sdist"
    assert (sdist["yanked"], sdist["yanked_reason"]) == (True, "broken release, use 1.0")
    assert sdist["upload_time_iso_8601"].endswith("Z")
    assert len(sdist["digests"]["sha256"]) == 64
    assert [file["filename"] for file in document["urls"]] == [
        pypi_index.sdists.get("piwtest-pure", "1.0").name
    ]

    _, document = get_json(f"{pypi_index.json_url}/piwtest-pure/1.1/json", "application/json")
    assert document["info"]["version"] == "1.1"
    assert "releases" not in document
    for url in (
        f"{pypi_index.json_url}/nothing/json",
        f"{pypi_index.json_url}/piwtest-pure/9/json",
    ):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(url, timeout=10)
        assert error.value.code == 404


def test_every_change_bumps_serials(pypi_index: LocalPyPI) -> None:
    def serials() -> tuple[int, int, int]:
        _, index = get_json(pypi_index.simple_url)
        assert index["meta"]["_last-serial"] == pypi_index.serial
        by_name = {project["name"]: project["_last-serial"] for project in index["projects"]}
        return pypi_index.serial, by_name.get("piwtest-pure", -1), by_name["piwtest-cext"]

    before, _, cext = serials()
    changes = [
        lambda: pypi_index.add_version("piwtest-pure", "2.0"),
        lambda: pypi_index.yank("piwtest-pure", "2.0", ""),
        lambda: pypi_index.unyank("piwtest-pure", "2.0"),
        lambda: pypi_index.remove_version("piwtest-pure", "1.0"),
        lambda: pypi_index.add_wheel_only_version("piwtest-pure", "3.0"),
    ]
    for change in changes:
        change()
        serial, pure, unchanged = serials()
        assert serial > before
        assert pure == serial
        assert unchanged == cext
        before = serial

    _, page = get_json(pypi_index.simple_url + "piwtest-pure/")
    assert page["versions"] == ["1.1", "2.0", "3.0"]
    assert [file["filename"] for file in page["files"]][-1] == "piwtest_pure-3.0-py3-none-any.whl"

    pypi_index.remove_project("piwtest-pure")
    serial, pure, _ = serials()
    assert serial > before
    assert pure == -1
    assert get(pypi_index.simple_url + "piwtest-pure/")[0] == 404


def test_wheel_only_version(pypi_index: LocalPyPI, tmp_path: Path) -> None:
    pypi_index.add_wheel_only_version("piwtest-binary", "1.0", requires_python=">=3.9")
    _, document = get_json(f"{pypi_index.json_url}/piwtest-binary/json")
    (wheel,) = document["releases"]["1.0"]
    assert (wheel["packagetype"], wheel["python_version"]) == ("bdist_wheel", "py3")
    target = tmp_path / wheel["filename"]
    urllib.request.urlretrieve(wheel["url"], target)
    assert read_metadata(target)["Requires-Python"] == ">=3.9"
    with zipfile.ZipFile(target) as archive:
        assert "piwtest_binary-1.0.dist-info/RECORD" in archive.namelist()


def test_request_log(pypi_index: LocalPyPI) -> None:
    pypi_index.clear_requests()
    get(pypi_index.simple_url + "piwtest-cext/", PIP_ACCEPT)
    get(pypi_index.simple_url + "nothing/")
    assert [(r.method, r.path, r.accept, r.status) for r in pypi_index.requests] == [
        ("GET", "/simple/piwtest-cext/", PIP_ACCEPT, 200),
        ("GET", "/simple/nothing/", None, 404),
    ]


def test_build_deps_are_served_with_requires_python(pypi_index: LocalPyPI) -> None:
    _, page = get_json(pypi_index.simple_url + "setuptools/")
    assert page["files"]
    assert all(file["requires-python"] for file in page["files"])
    assert all(file["filename"].endswith(".whl") for file in page["files"])


# Real pips, building from the index ------------------------------------------------------------

BUILT = ("piwtest-pure", "piwtest-cext", "piwtest-abi3")
PipRun = tuple[subprocess.CompletedProcess[str], Path]


@pytest.fixture(scope="module")
def build_index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    with LocalPyPI(
        sdists=test_sdists, build_deps=build_deps_dir, work_dir=tmp_path_factory.mktemp("index")
    ) as index:
        index.add_catalogue()
        yield index


@pytest.fixture(scope="module")
def pip_runs(build_index: LocalPyPI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PipRun]:
    """The builds below, run once and two at a time (one pip per core): pip is mostly waiting
    on its own subprocesses, and a build one after the other would take most of a minute."""
    jobs = {
        "3.9": (find_python("3.9"), [(name, "1.0") for name in BUILT]),
        "3.11": (find_python("3.11"), [(name, "1.0") for name in BUILT]),
        "broken": (find_python("3.11"), [("piwtest-broken", "1.0")]),
    }

    def run(job: str, python: Path, wanted: list[tuple[str, str]]) -> PipRun:
        dest = tmp_path_factory.mktemp(f"wheels-{job}")
        return pip_wheels(python, build_index.simple_url, wanted, dest), dest

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            job: pool.submit(run, job, python, wanted)
            for job, (python, wanted) in jobs.items()
            if python is not None
        }
        return {job: future.result() for job, future in futures.items()}


@pytest.mark.parametrize(
    ("python_fixture", "project", "expected_tag"),
    [
        ("python39", "piwtest-pure", "py3-none-any"),
        ("python39", "piwtest-cext", f"cp39-cp39-{PLATFORM}"),
        ("python39", "piwtest-abi3", f"cp39-abi3-{PLATFORM}"),
        ("python311", "piwtest-pure", "py3-none-any"),
        ("python311", "piwtest-cext", f"cp311-cp311-{PLATFORM}"),
        ("python311", "piwtest-abi3", f"cp39-abi3-{PLATFORM}"),
    ],
)
def test_pip_builds_from_the_index(
    request: pytest.FixtureRequest,
    pip_runs: dict[str, PipRun],
    python_fixture: str,
    project: str,
    expected_tag: str,
) -> None:
    python: Path = request.getfixturevalue(python_fixture)  # skips if it is missing
    result, dest = pip_runs[minor_version(python)]
    assert result.returncode == 0, result.stdout
    wheels = {parse_wheel_filename(wheel.name)[0]: wheel for wheel in dest.glob("*.whl")}
    assert wheels.keys() == set(BUILT)
    _, version, _, tags = parse_wheel_filename(wheels[project].name)
    assert str(version) == "1.0"
    assert {str(tag) for tag in tags} == {expected_tag}
    if project == "piwtest-pure":
        assert read_metadata(wheels[project]).get_all("Requires-Dist") == ["piwtest-cext"]


@pytest.mark.parametrize("python_fixture", ["python39", "python311"])
def test_build_environment_comes_from_the_index(
    request: pytest.FixtureRequest,
    pip_runs: dict[str, PipRun],
    build_index: LocalPyPI,
    build_deps_dir: Path,
    python_fixture: str,
) -> None:
    python: Path = request.getfixturevalue(python_fixture)
    full_version = python.parent.parent.name
    # pip names its interpreter in its User-Agent, which tells the two runs' requests apart.
    downloads = [
        entry.path.rsplit("/", 1)[1]
        for entry in build_index.requests
        if entry.path.startswith("/packages/setuptools/")
        and f'"python":"{full_version}"' in (entry.user_agent or "")
    ]
    # At least one isolated build environment per project, each with a setuptools this Python
    # accepts (the broken project's build runs under 3.11 too).
    assert len(downloads) >= len(BUILT)
    for filename in set(downloads):
        served = read_metadata(build_deps_dir / filename)
        assert full_version in SpecifierSet(served["Requires-Python"])


def test_pip_build_of_broken_project_fails(python311: Path, pip_runs: dict[str, PipRun]) -> None:
    result, dest = pip_runs["broken"]
    assert result.returncode != 0
    assert "piwtest-broken: this package always fails to build" in result.stdout
    assert list(dest.glob("*.whl")) == []


def minor_version(python: Path) -> str:
    """The minor version ("3.11") of pyenv's .../versions/3.11.7/bin/python."""
    return ".".join(python.parent.parent.name.split(".")[:2])
