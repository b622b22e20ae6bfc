"""Output directories for the web tests, laid out as piwheels.web.layout says and filled by the
real renderers (index.py, pages.py, writer.py) from real wheels, as the Scribe fills them; and a
plain HTTP client to read them back through a server.

The farm's database is not involved: :func:`publish` makes the records (ProjectData & co) from the
wheels themselves, with one made-up build per ABI, so that project pages have a version x ABI
table with built, covered and failed cells and logs to link to.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import zipfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from packaging.utils import parse_wheel_filename
from packaging.version import Version

import piwheels.web
from piwheels.records.builds import BuildState
from piwheels.records.projects import (
    AbiCell,
    BuildInfo,
    ProjectData,
    SearchEntry,
    VersionInfo,
    WheelFile,
)
from piwheels.web import index, pages, site_pages, sitemap
from piwheels.web.layout import NOT_FOUND_PAGE, log_path
from piwheels.web.writer import extract_metadata, write_atomic, write_gzip_atomic

# The Accept headers real clients send (pip 23-26, uv, Chromium/Firefox).
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)
#: Where the sitemap says the site is (its URLs must be absolute; the tests' ports vary).
SITE_URL = "https://piwheels.example"
#: The content of a file beside the output directory, which no server may ever send.
SECRET = b"piwheels-test-secret: this file lies outside the output directory\n"


class Response(NamedTuple):
    """What :func:`fetch` got."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


#: The farm's ABIs in the made-up records, lowest first.
ABIS = ("cp39", "cp311", "cp313")
STATIC_DIR = Path(piwheels.web.__file__).parent / "static"
RELEASED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def publish(
    output: Path, wheels: Iterable[Path], *, metadata: bool = True, abis: Iterable[str] = ABIS
) -> dict[str, ProjectData]:
    """Put *wheels* in the index under *output* with every page; returns the records by name.

    With *metadata* False no ``.metadata`` files are written and the index says so (PEP 658),
    as for wheels published before the farm extracted them: clients must read the wheel.
    """
    abis = list(abis)
    by_version: dict[tuple[str, str], list[Path]] = {}
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        by_version.setdefault((name, str(version)), []).append(wheel)
    projects: dict[str, ProjectData] = {}
    build_ids = iter(range(1001, 100_000))
    for name in sorted({name for name, _ in by_version}):
        versions = sorted(
            (version for project, version in by_version if project == name),
            key=Version,
            reverse=True,
        )
        infos = []
        summary = ""
        display_name = name
        for version in versions:
            files = []
            for wheel in sorted(by_version[name, version], key=lambda path: path.name):
                target = output / "simple" / name / wheel.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(wheel, target)
                meta = extract_metadata(wheel)
                headers = BytesParser().parsebytes(meta, headersonly=True)
                summary, display_name = headers.get("Summary", ""), headers["Name"]
                metadata_hash = None
                if metadata:
                    write_atomic(target.with_name(target.name + ".metadata"), meta)
                    metadata_hash = hashlib.sha256(meta).hexdigest()
                files.append(_wheel_file(target, headers.get("Requires-Python"), metadata_hash))
            cells, builds = _builds(output, abis, files, build_ids)
            infos.append(
                VersionInfo(
                    version=version,
                    released=RELEASED,
                    yanked=False,
                    skip="",
                    cells=cells,
                    builds=builds,
                    files=files,
                )
            )
        project = ProjectData(
            name=name,
            display_name=display_name,
            summary=summary,
            description=f"{display_name}: a test project of the piwheels test suite.",
            abis=abis,
            versions=infos,
        )
        projects[name] = project
        html, json_bytes = index.simple_project(project)
        write_atomic(output / "simple" / name / "index.html", html)
        write_atomic(output / "simple" / name / "index.json", json_bytes)
        write_atomic(
            output / "project" / name / "index.html",
            pages.project_page(project, apt_dependencies=()),
        )
        write_atomic(output / "project" / name / "json" / "index.json", pages.project_json(project))
    html, json_bytes = index.simple_root(sorted(projects))
    write_atomic(output / "simple" / "index.html", html)
    write_atomic(output / "simple" / "index.json", json_bytes)
    entries = [
        SearchEntry(name, project.summary, len(project.versions), len(project.files))
        for name, project in sorted(projects.items())
    ]
    write_atomic(output / "packages.json", pages.search_index(entries))
    write_atomic(output / "search" / "index.html", pages.search_page())
    write_atomic(output / "faq" / "index.html", site_pages.faq_page())
    write_atomic(output / NOT_FOUND_PAGE, site_pages.not_found_page())
    sitemap.write_sitemap(
        output, SITE_URL, sitemap.project_pages((name, RELEASED) for name in sorted(projects))
    )
    shutil.copytree(STATIC_DIR, output / "static", dirs_exist_ok=True)
    return projects


def _wheel_file(path: Path, requires_python: str | None, metadata_hash: str | None) -> WheelFile:
    data = path.read_bytes()
    tags = parse_wheel_filename(path.name)[3]
    return WheelFile(
        filename=path.name,
        filesize=len(data),
        filehash=hashlib.sha256(data).hexdigest(),
        requires_python=requires_python,
        uploaded=RELEASED,
        yanked=None,
        metadata_hash=metadata_hash,
        abi_tag=min(tag.abi for tag in tags),
        apt_dependencies=(),
    )


def _builds(
    output: Path, abis: list[str], files: list[WheelFile], build_ids: Iterable[int]
) -> tuple[dict[str, AbiCell], list[BuildInfo]]:
    """A made-up build per ABI: built where a wheel has that ABI tag, a pure or abi3 wheel
    covering later ABIs, failed (with a log) where nothing fits."""
    ids = iter(build_ids)
    cells: dict[str, AbiCell] = {}
    builds: list[BuildInfo] = []
    covering = None
    for abi in abis:
        native = [file for file in files if file.abi_tag == abi]
        portable = [file for file in files if file.abi_tag in {"none", "abi3"}]
        if covering is not None:
            cells[abi] = AbiCell(BuildState.COVERED, f"by the {covering} build", None)
            continue
        build_id = next(ids)
        status = bool(native or portable)
        if portable:
            covering = abi
        text = f"building for {abi}\n" + ("done\n" if status else "error: no compiler here\n")
        write_gzip_atomic(output / log_path(build_id), text)
        cells[abi] = AbiCell(
            BuildState.BUILT if status else BuildState.FAILED,
            "" if status else "the build failed",
            build_id,
        )
        builds.append(BuildInfo(build_id, abi, status, RELEASED, timedelta(seconds=42), built_by=1))
    return cells, builds


def wheel_metadata(wheel: Path) -> bytes:
    """The METADATA inside *wheel*, read plainly (to compare with the served .metadata)."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name)


def fetch(
    base_url: str, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Response:
    """One request to the server at *base_url*, with *path* sent exactly as given: no
    client-side normalisation of "..", no Accept-Encoding unless in *headers*."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None, base_url
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()
