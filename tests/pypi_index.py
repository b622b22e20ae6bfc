"""A PyPI look-alike on 127.0.0.1, serving sdists of the tiny real projects in tests/packages.

Tests never reach the network: :class:`SdistFactory` makes sdists of any version of those projects
(offline, with the venv's setuptools), and :class:`LocalPyPI` serves them, with the build
dependencies that pip needs for an isolated build (the wheels ``scripts/fetch-build-deps`` puts in
``.cache/build-deps``), through the interfaces piwheels and pip use:

* ``/simple/`` and ``/simple/<project>/``: PEP 503/592/629 HTML and PEP 691/700 JSON, chosen by the
  ``Accept`` header (or ``?format=``), with ``X-PyPI-Last-Serial``; unnormalised names redirect.
  A project given a PEP 792 status has it on its page (API version 1.4); a quarantined one lists
  no files.
* ``/pypi/<project>/json`` and ``/pypi/<project>/<version>/json``: PyPI's JSON API.
* ``/packages/<project>/<filename>``: the files.

Every change (new version, yank, removal, status) bumps a global serial and the project's, as on
PyPI. What is removed can be restored, as PyPI's administrators can.
Every request is logged, so tests can assert on what was asked. :func:`pip_wheel` drives a real pip
against the index; :func:`find_python` finds pyenv's interpreters for it.
"""

from __future__ import annotations

import base64
import email.parser
import functools
import hashlib
import html
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

logger = logging.getLogger("tests.pypi_index")

TESTS_DIR = Path(__file__).resolve().parent
PACKAGES_DIR = TESTS_DIR / "packages"
BUILD_DEPS_DIR = TESTS_DIR.parent / ".cache" / "build-deps"

#: The version every project in tests/packages carries until a real one is substituted.
TEMPLATE_VERSION = "0+template"

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"
STATUS_API_VERSION = "1.4"  # PEP 792's, on the pages of projects that have a status
STATUSES = ("active", "archived", "quarantined", "deprecated")

#: (project, version, yank reason or None): what the ``pypi_index`` fixture serves.
DEFAULT_CATALOGUE: tuple[tuple[str, str, str | None], ...] = (
    ("piwtest-pure", "1.0", None),
    ("piwtest-pure", "1.1", "broken release, use 1.0"),
    ("piwtest-cext", "1.0", None),
    ("piwtest-abi3", "1.0", None),
    ("piwtest-broken", "1.0", None),
    ("piwtest-py311", "1.0", None),
)


# Making sdists -------------------------------------------------------------------------------


class SdistBuildError(RuntimeError):
    """setuptools could not make an sdist of a test project."""


# One interpreter for the whole batch: most of the cost of a build is importing setuptools.
_BUILD_SCRIPT = """
import os, sys
import setuptools.build_meta as backend
out = sys.argv[1]
for source in sys.argv[2:]:
    os.chdir(source)
    print("piwtest-sdist:" + os.path.join(out, backend.build_sdist(out)))
"""


class SdistFactory:
    """Makes, once each, sdists of given versions of the projects in *packages_dir*.

    A project is copied with :data:`TEMPLATE_VERSION` replaced by the version wanted, then
    ``setuptools.build_meta.build_sdist`` runs in it, under *python* (by default this test run's
    interpreter), which needs setuptools but no network.
    """

    def __init__(
        self, work_dir: Path, *, python: Path | None = None, packages_dir: Path = PACKAGES_DIR
    ) -> None:
        self.work_dir = work_dir
        self.python = python or Path(sys.executable)
        self.packages_dir = packages_dir
        self._built: dict[tuple[str, str], Path] = {}

    @property
    def projects(self) -> list[str]:
        return sorted(path.name for path in self.packages_dir.iterdir() if path.is_dir())

    def get(self, project: str, version: str) -> Path:
        """The sdist of *project* at *version*, made now if it has not been yet."""
        return self.build([(project, version)])[0]

    def build(self, wanted: Iterable[tuple[str, str]]) -> list[Path]:
        """The sdists of every (project, version) in *wanted*, making the missing in one go."""
        wanted = list(wanted)
        missing = [key for key in dict.fromkeys(wanted) if key not in self._built]
        if missing:
            sources = [self._prepare(project, version) for project, version in missing]
            out_dir = self.work_dir / "sdists"
            out_dir.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(
                [str(self.python), "-c", _BUILD_SCRIPT, str(out_dir), *map(str, sources)],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                env=_clean_env(),
                check=False,
            )
            built = [
                Path(line.removeprefix("piwtest-sdist:"))
                for line in result.stdout.splitlines()
                if line.startswith("piwtest-sdist:")
            ]
            if result.returncode != 0 or len(built) != len(missing):
                raise SdistBuildError(
                    f"making sdists of {missing} failed (exit status {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}"
                )
            self._built.update(zip(missing, built, strict=True))
        return [self._built[key] for key in wanted]

    def _prepare(self, project: str, version: str) -> Path:
        source = self.packages_dir / project
        if not (source / "pyproject.toml").is_file():
            raise ValueError(f"no test project {project!r}; there are {self.projects}")
        try:
            Version(version)
        except InvalidVersion:
            raise ValueError(f"invalid version {version!r} for {project}") from None
        target = self.work_dir / "sources" / f"{project}-{version}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        for path in target.rglob("*"):
            if path.suffix in {".toml", ".py", ".c", ".cfg"}:
                path.write_text(path.read_text().replace(TEMPLATE_VERSION, version))
        return target


def make_wheel(
    project: str,
    version: str,
    out_dir: Path,
    *,
    tag: str = "py3-none-any",
    requires_python: str | None = None,
) -> Path:
    """A minimal valid wheel of *project* (one module saying its version), written directly.

    For versions that exist only as wheels on the index ("binary only"): no build backend is
    involved, so any tag can be claimed.
    """
    dist = canonicalize_name(project).replace("-", "_")
    version = str(Version(version))
    info = f"{dist}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {project}",
        f"Version: {version}",
        f"Summary: piwheels test package {project}, published as a wheel only",
    ]
    if requires_python:
        metadata.append(f"Requires-Python: {requires_python}")
    contents = {
        f"{dist}.py": f'__version__ = "{version}"\n',
        f"{info}/METADATA": "\n".join(metadata) + "\n\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: piwheels-tests\n"
            f"Root-Is-Purelib: {'true' if tag.endswith('-none-any') else 'false'}\nTag: {tag}\n"
        ),
    }
    record = []
    for name, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = "\n".join(record) + "\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, text in contents.items():
            wheel.writestr(name, text)
    return path


def read_metadata(path: Path) -> Message:
    """The core metadata of a wheel (METADATA) or an sdist (PKG-INFO)."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            names = [
                name
                for name in archive.namelist()
                if name.count("/") == 1 and name.endswith(".dist-info/METADATA")
            ]
            data = archive.read(names[0]) if names else None
    elif path.name.endswith(".tar.gz"):
        with tarfile.open(path) as archive:
            members = [
                member
                for member in archive.getmembers()
                if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO")
            ]
            stream = archive.extractfile(members[0]) if members else None
            data = stream.read() if stream else None
    else:
        raise ValueError(f"not a wheel or an sdist: {path.name!r}")
    if data is None:
        raise ValueError(f"no core metadata in {path.name!r}")
    return email.parser.BytesParser().parsebytes(data, headersonly=True)


# The index's contents --------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexFile:
    """One file of one release, as the index serves it."""

    filename: str
    path: Path
    packagetype: str  # "sdist" or "bdist_wheel", as in PyPI's JSON API
    python_version: str  # "source" for an sdist, else the wheel's Python tag
    requires_python: str | None
    size: int
    sha256: str
    md5: str
    blake2b_256: str
    upload_time: datetime

    @classmethod
    def from_path(cls, path: Path, requires_python: str | None, upload_time: datetime) -> Self:
        data = path.read_bytes()
        if path.name.endswith(".whl"):
            packagetype = "bdist_wheel"
            tags = parse_wheel_filename(path.name)[3]
            python_version = ".".join(sorted({tag.interpreter for tag in tags}))
        else:
            packagetype, python_version = "sdist", "source"
        return cls(
            filename=path.name,
            path=path,
            packagetype=packagetype,
            python_version=python_version,
            requires_python=requires_python,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            blake2b_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
            upload_time=upload_time,
        )


@dataclass
class Release:
    version: str
    summary: str
    requires_python: str | None
    requires_dist: list[str] | None
    files: list[IndexFile] = field(default_factory=list)
    yanked: bool = False
    yanked_reason: str = ""


@dataclass
class Project:
    name: str  # as its metadata spells it; URLs use the normalised form
    serial: int
    releases: dict[str, Release] = field(default_factory=dict)
    removed_releases: dict[str, Release] = field(default_factory=dict)  # to restore
    status: str = "active"  # PEP 792
    status_reason: str = ""

    def release(self, version: str) -> Release | None:
        wanted = Version(version)
        for release in self.releases.values():
            if Version(release.version) == wanted:
                return release
        return None

    def sorted_releases(self) -> list[Release]:
        return sorted(self.releases.values(), key=lambda release: Version(release.version))


@dataclass(frozen=True)
class LoggedRequest:
    """One request the index answered."""

    method: str
    path: str  # with the query string
    accept: str | None
    user_agent: str | None
    status: int


def negotiate(accept: str | None) -> str | None:
    """The simple-API content type to serve for an ``Accept`` header, None if none is acceptable.

    Highest quality wins; then the more specific match; then the client's earlier entry. A bare
    ``*/*`` or no header at all gets ``text/html``, which every client understands.
    """
    if not accept:
        return TEXT_HTML
    offers = (TEXT_HTML, HTML_V1_TYPE, JSON_TYPE)
    best: tuple[float, int, int, int] | None = None
    chosen = None
    for position, entry in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        for rank, offer in enumerate(offers):
            kind = offer.split("/")[0]
            if media.lower() == offer:
                specificity = 2
            elif media.lower() in {f"{kind}/*", "*/*"}:
                specificity = 1 if media != "*/*" else 0
            else:
                continue
            key = (quality, specificity, -position, -rank)
            if best is None or key > best:
                best, chosen = key, offer
    return chosen


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The index -------------------------------------------------------------------------------------


class LocalPyPI:
    """A PyPI-like index on 127.0.0.1 (a random free port), in a thread of this process.

    :param sdists: where :meth:`add_version` gets its sdists (a session-wide factory saves
        rebuilding them for every test); by default a factory of its own.
    :param build_deps: a directory of wheels (setuptools, wheel, ...) to serve as projects, so
        that pip can build the test projects in an isolated environment.
    :param work_dir: for files the index makes; by default a temporary directory.

    Methods that change the index may be called while it serves.
    """

    def __init__(
        self,
        *,
        sdists: SdistFactory | None = None,
        build_deps: Path | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="piwtest-index-")
            work_dir = Path(self._tmp.name)
        self.work_dir = work_dir
        self.sdists = sdists or SdistFactory(work_dir / "sdist-factory")
        self._lock = threading.RLock()
        self._serial = 0
        self._projects: dict[str, Project] = {}  # by normalised name
        self._files: dict[str, IndexFile] = {}  # by filename
        self._file_project: dict[str, str] = {}  # filename -> normalised project name
        self._requests: list[LoggedRequest] = []
        self._removed: dict[str, Project] = {}  # removed projects, by normalised name
        # Whether the JSON API answers 404 for a quarantined project, whose simple page alone
        # then says why; False serves its details as for any other project.
        self.quarantine_hides_details = True
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if build_deps is not None:
            self.add_build_deps(build_deps)

    # Life cycle

    def start(self) -> Self:
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                # stop() waits up to one interval for the loop to notice.
                kwargs={"poll_interval": 0.05},
                name="LocalPyPI",
                daemon=True,
            )
            self._thread.start()
            logger.debug("LocalPyPI serving on %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's root, without a trailing slash: ``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("LocalPyPI has not been started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    @property
    def json_url(self) -> str:
        return f"{self.url}/pypi"

    def file_url(self, filename: str) -> str:
        with self._lock:
            try:
                key = self._file_project[filename]
            except KeyError:
                raise KeyError(f"no file {filename!r} on the index") from None
        return f"{self.url}/packages/{key}/{quote(filename)}"

    # What happened

    @property
    def serial(self) -> int:
        """The serial of the last change to the index."""
        return self._serial

    def project_serial(self, project: str) -> int:
        with self._lock:
            return self._project(project).serial

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # Changes

    def add_file(self, path: Path, *, upload_time: datetime | None = None) -> IndexFile:
        """Publish the wheel or sdist at *path*; its metadata names the project and version."""
        metadata = read_metadata(path)
        name, version = metadata["Name"], metadata["Version"]
        requires_python = metadata.get("Requires-Python")
        file = IndexFile.from_path(path, requires_python, upload_time or datetime.now(UTC))
        with self._lock:
            if file.filename in self._files:
                raise ValueError(f"{file.filename!r} is already on the index")
            self._serial += 1
            key = canonicalize_name(name)
            project = self._projects.setdefault(key, Project(name, self._serial))
            release = project.release(version)
            if release is None:
                release = project.releases[version] = Release(
                    version=version,
                    summary=metadata.get("Summary", ""),
                    requires_python=requires_python,
                    requires_dist=metadata.get_all("Requires-Dist"),
                )
            release.files.append(file)
            self._files[file.filename] = file
            self._file_project[file.filename] = key
            project.serial = self._serial
        return file

    def add_version(
        self, project: str, version: str, *, upload_time: datetime | None = None
    ) -> IndexFile:
        """Publish an sdist of the test project *project* at *version*."""
        with self._lock:
            known = self._projects.get(canonicalize_name(project))
            if known is not None and known.release(version) is not None:
                raise ValueError(f"{project} {version} is already on the index")
        return self.add_file(self.sdists.get(project, version), upload_time=upload_time)

    def add_wheel_only_version(
        self,
        project: str,
        version: str,
        *,
        tag: str = "py3-none-any",
        requires_python: str | None = None,
        upload_time: datetime | None = None,
    ) -> IndexFile:
        """Publish *version* of *project* as a wheel alone, with no sdist to build from."""
        with self._lock:
            known = self._projects.get(canonicalize_name(project))
            if known is not None and known.release(version) is not None:
                raise ValueError(f"{project} {version} is already on the index")
        path = make_wheel(
            project, version, self.work_dir / "wheels", tag=tag, requires_python=requires_python
        )
        return self.add_file(path, upload_time=upload_time)

    def add_build_deps(self, directory: Path) -> None:
        """Publish every wheel in *directory* (see ``scripts/fetch-build-deps``)."""
        for path in sorted(directory.glob("*.whl")):
            if path.name not in self._files:
                self.add_file(path)

    def add_catalogue(
        self, entries: Iterable[tuple[str, str, str | None]] = DEFAULT_CATALOGUE
    ) -> None:
        """Publish (project, version, yank reason or None) entries; sdists made in one batch."""
        entries = list(entries)
        self.sdists.build((project, version) for project, version, _ in entries)
        for project, version, yank_reason in entries:
            self.add_version(project, version)
            if yank_reason is not None:
                self.yank(project, version, yank_reason)

    def yank(self, project: str, version: str, reason: str = "") -> None:
        """Yank (PEP 592) every file of *version*, with *reason* if given."""
        with self._lock:
            release = self._release(project, version)
            release.yanked, release.yanked_reason = True, reason
            self._touch(project)

    def unyank(self, project: str, version: str) -> None:
        with self._lock:
            release = self._release(project, version)
            release.yanked, release.yanked_reason = False, ""
            self._touch(project)

    def remove_version(self, project: str, version: str) -> None:
        """Delete *version* and its files; the project stays, even with no release left."""
        with self._lock:
            release = self._release(project, version)
            for file in release.files:
                del self._files[file.filename], self._file_project[file.filename]
            known = self._project(project)
            known.removed_releases[release.version] = known.releases.pop(release.version)
            self._touch(project)

    def restore_version(self, project: str, version: str) -> None:
        """Bring back a *version* :meth:`remove_version` deleted, files and all."""
        with self._lock:
            known = self._project(project)
            wanted = Version(version)
            found = [v for v in known.removed_releases if Version(v) == wanted]
            if not found:
                raise KeyError(f"no removed version {version!r} of {project!r}")
            release = known.releases[found[0]] = known.removed_releases.pop(found[0])
            self._publish_files(canonicalize_name(project), [release])
            self._touch(project)

    def remove_project(self, project: str) -> None:
        """Delete *project* altogether; it leaves the project list."""
        with self._lock:
            key = canonicalize_name(project)
            removed = self._projects.pop(key, None)
            if removed is None:
                raise KeyError(f"no project {project!r} on the index")
            for release in removed.releases.values():
                for file in release.files:
                    del self._files[file.filename], self._file_project[file.filename]
            self._removed[key] = removed
            self._serial += 1

    def restore_project(self, project: str) -> None:
        """Bring back a project :meth:`remove_project` deleted, with a new serial."""
        with self._lock:
            key = canonicalize_name(project)
            restored = self._removed.pop(key, None)
            if restored is None:
                raise KeyError(f"no removed project {project!r}")
            self._projects[key] = restored
            self._publish_files(key, list(restored.releases.values()))
            self._touch(project)

    def set_status(self, project: str, status: str, reason: str = "") -> None:
        """Give *project* a PEP 792 status (and a reason, if any); "active" takes it away."""
        if status not in STATUSES:
            raise ValueError(f"not a PEP 792 status: {status!r}")
        with self._lock:
            known = self._project(project)
            known.status, known.status_reason = status, reason
            self._touch(project)

    def _publish_files(self, key: str, releases: list[Release]) -> None:
        for release in releases:
            for file in release.files:
                self._files[file.filename] = file
                self._file_project[file.filename] = key

    # Internals

    def _project(self, name: str) -> Project:
        try:
            return self._projects[canonicalize_name(name)]
        except KeyError:
            raise KeyError(f"no project {name!r} on the index") from None

    def _release(self, project: str, version: str) -> Release:
        release = self._project(project).release(version)
        if release is None:
            raise KeyError(f"no version {version!r} of {project!r} on the index")
        return release

    def _touch(self, project: str) -> None:
        self._serial += 1
        self._project(project).serial = self._serial

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    # Views: each returns (status, headers, body) under the lock, so a page never shows half
    # of a change.

    def _simple_index(self, content_type: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            projects = sorted(self._projects.items())
            serial = self._serial
            if content_type == JSON_TYPE:
                body = json.dumps(
                    {
                        "meta": {"api-version": API_VERSION, "_last-serial": serial},
                        "projects": [
                            {"name": project.name, "_last-serial": project.serial}
                            for _, project in projects
                        ],
                    }
                )
            else:
                links = "\n".join(
                    f'    <a href="/simple/{key}/">{html.escape(project.name)}</a><br/>'
                    for key, project in projects
                )
                body = _html_page("Simple index", links)
        return 200, _simple_headers(content_type, serial), body.encode()

    def _simple_project(self, key: str, content_type: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            project = self._projects.get(key)
            if project is None:
                return _not_found()
            releases = project.sorted_releases()
            files = [(release, file) for release in releases for file in release.files]
            if project.status == "quarantined":
                files = []  # PEP 792: no files of a quarantined project are offered
            marker: dict[str, str] | None = None
            if project.status != "active":
                marker = {"status": project.status}
                if project.status_reason:
                    marker["reason"] = project.status_reason
            api_version = API_VERSION if marker is None else STATUS_API_VERSION
            if content_type == JSON_TYPE:
                document: dict[str, Any] = {
                    "meta": {"api-version": api_version, "_last-serial": project.serial},
                    "name": key,
                    "versions": [release.version for release in releases],
                    "files": [self._pep691_file(release, file) for release, file in files],
                }
                if marker is not None:
                    document["project-status"] = marker
                body = json.dumps(document)
            else:
                links = "\n".join(self._pep503_link(release, file) for release, file in files)
                body = _html_page(f"Links for {project.name}", links, api_version, marker)
            return 200, _simple_headers(content_type, project.serial), body.encode()

    def _pep691_file(self, release: Release, file: IndexFile) -> dict[str, Any]:
        return {
            "filename": file.filename,
            "url": self.file_url(file.filename),
            "hashes": {"sha256": file.sha256},
            "requires-python": file.requires_python,
            "yanked": (release.yanked_reason or True) if release.yanked else False,
            "size": file.size,
            "upload-time": _iso(file.upload_time),
            # No PEP 658 metadata files are served; saying so spares clients a request.
            "core-metadata": False,
            "data-dist-info-metadata": False,
        }

    def _pep503_link(self, release: Release, file: IndexFile) -> str:
        attributes = f'href="{html.escape(self.file_url(file.filename))}#sha256={file.sha256}"'
        if file.requires_python:
            attributes += f' data-requires-python="{html.escape(file.requires_python)}"'
        if release.yanked:
            attributes += f' data-yanked="{html.escape(release.yanked_reason)}"'
        return f"    <a {attributes}>{html.escape(file.filename)}</a><br/>"

    def _json_api(self, name: str, version: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            project = self._projects.get(canonicalize_name(name))
            if project is None:
                return _not_found(json_body=True)
            if project.status == "quarantined" and self.quarantine_hides_details:
                return _not_found(json_body=True)
            if name != project.name:
                # PyPI sends unnormalised (or differently spelled) names to the canonical URL.
                suffix = f"{version}/json" if version else "json"
                return _redirect(f"/pypi/{project.name}/{suffix}")
            releases = project.sorted_releases()
            if version is None:
                release = _latest(releases)
            else:
                try:
                    release = project.release(version)
                except InvalidVersion:
                    release = None
            if release is None:
                return _not_found(json_body=True)
            document: dict[str, Any] = {
                "info": self._json_info(project, release),
                "last_serial": project.serial,
                "urls": [self._json_file(release, file) for file in release.files],
                "vulnerabilities": [],
            }
            if version is None:
                document["releases"] = {
                    each.version: [self._json_file(each, file) for file in each.files]
                    for each in releases
                }
            headers = {
                "Content-Type": "application/json",
                "X-PyPI-Last-Serial": str(project.serial),
            }
            return 200, headers, json.dumps(document).encode()

    def _json_info(self, project: Project, release: Release) -> dict[str, Any]:
        base = f"{self.url}/project/{project.name}/"
        return {
            "name": project.name,
            "version": release.version,
            "summary": release.summary,
            "description": "",
            "description_content_type": None,
            "requires_python": release.requires_python,
            "requires_dist": release.requires_dist,
            "yanked": release.yanked,
            "yanked_reason": release.yanked_reason or None,
            "author": None,
            "license": None,
            "home_page": None,
            "classifiers": [],
            "package_url": base,
            "project_url": base,
            "release_url": f"{base}{release.version}/",
        }

    def _json_file(self, release: Release, file: IndexFile) -> dict[str, Any]:
        return {
            "filename": file.filename,
            "packagetype": file.packagetype,
            "python_version": file.python_version,
            "requires_python": file.requires_python,
            "size": file.size,
            "upload_time": file.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "upload_time_iso_8601": _iso(file.upload_time),
            "url": self.file_url(file.filename),
            "digests": {"sha256": file.sha256, "md5": file.md5, "blake2b_256": file.blake2b_256},
            "md5_digest": file.md5,
            "yanked": release.yanked,
            "yanked_reason": release.yanked_reason or None,
            "comment_text": "",
            "has_sig": False,
            "downloads": -1,
        }

    def _file(self, key: str, filename: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            file = self._files.get(filename)
            if file is None or self._file_project[filename] != key:
                return _not_found()
            if self._projects[key].status == "quarantined":
                return _not_found()
        return 200, {"Content-Type": "application/octet-stream"}, file.path.read_bytes()

    def handle(self, target: str, accept: str | None) -> tuple[int, dict[str, str], bytes]:
        """Answer a GET of *target*: (status, headers, body)."""
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        suffix = f"?{parts.query}" if parts.query else ""
        segments = path.strip("/").split("/") if path.strip("/") else []
        if not segments:
            return 200, {"Content-Type": TEXT_HTML}, _html_page("LocalPyPI", "").encode()
        if segments[0] == "simple":
            if not path.endswith("/"):
                return _redirect(f"{path}/{suffix}")
            if "format" in query:
                # An unescaped "+" in a query string reads as a space; media types have none.
                content_type = query["format"][-1].replace(" ", "+")
            else:
                content_type = negotiate(accept)
            if content_type not in {TEXT_HTML, HTML_V1_TYPE, JSON_TYPE}:
                body = f"not acceptable; offered: {TEXT_HTML}, {HTML_V1_TYPE}, {JSON_TYPE}\n"
                return 406, {"Content-Type": "text/plain"}, body.encode()
            if len(segments) == 1:
                return self._simple_index(content_type)
            if len(segments) == 2:
                key = canonicalize_name(segments[1])
                if key != segments[1]:
                    return _redirect(f"/simple/{key}/{suffix}")
                return self._simple_project(key, content_type)
        if segments[0] == "pypi" and segments[-1] == "json" and len(segments) in {3, 4}:
            return self._json_api(segments[1], segments[2] if len(segments) == 4 else None)
        if segments[0] == "packages" and len(segments) == 3:
            return self._file(segments[1], segments[2])
        return _not_found()


def _simple_headers(content_type: str, serial: int) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "X-PyPI-Last-Serial": str(serial),
        # The same URL answers in several formats.
        "Vary": "Accept",
    }


def _html_page(
    title: str, body: str, api_version: str = API_VERSION, marker: dict[str, str] | None = None
) -> str:
    title = html.escape(title)
    status = ""
    if marker is not None:  # PEP 792's meta tags
        value = html.escape(marker["status"])
        status = f'    <meta name="pypi:project-status" content="{value}">\n'
        if "reason" in marker:
            reason = html.escape(marker["reason"])
            status += f'    <meta name="pypi:project-status-reason" content="{reason}">\n'
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{api_version}">\n{status}'
        f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
        f"{body}\n  </body>\n</html>\n"
    )


def _redirect(location: str) -> tuple[int, dict[str, str], bytes]:
    return 301, {"Location": location, "Content-Type": "text/plain"}, b""


def _not_found(*, json_body: bool = False) -> tuple[int, dict[str, str], bytes]:
    if json_body:
        return 404, {"Content-Type": "application/json"}, b'{"message": "Not Found"}'
    return 404, {"Content-Type": "text/plain"}, b"404 Not Found\n"


def _latest(releases: list[Release]) -> Release | None:
    """The release PyPI's JSON API describes: the newest not yanked, preferring final releases."""
    candidates = [release for release in releases if not release.yanked] or releases
    finals = [release for release in candidates if not Version(release.version).is_prerelease]
    return (finals or candidates)[-1] if candidates else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], index: LocalPyPI
    ) -> None:
        super().__init__(address, handler)
        self.index = index


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "LocalPyPI"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        accept = self.headers.get("Accept")
        try:
            status, headers, body = self.server.index.handle(self.path, accept)
        except Exception:
            logger.exception("LocalPyPI failed on %s", self.path)
            status, headers, body = 500, {"Content-Type": "text/plain"}, b"internal error\n"
        self.server.index._log(
            LoggedRequest(self.command, self.path, accept, self.headers.get("User-Agent"), status)
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("LocalPyPI: %s", format % args)


# Interpreters and pip --------------------------------------------------------------------------


@functools.cache
def _pyenv_root() -> Path | None:
    if "PYENV_ROOT" in os.environ:
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        result = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return Path(result.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


@functools.cache
def find_python(version: str) -> Path | None:
    """pyenv's CPython *version* ("3.11" for the newest 3.11.x, or an exact "3.11.7"), or None."""
    root = _pyenv_root()
    if root is None or not (root / "versions").is_dir():
        return None
    pattern = re.compile(rf"{re.escape(version)}(\.\d+)?")
    found = [
        path
        for path in (root / "versions").iterdir()
        if pattern.fullmatch(path.name) and (path / "bin" / "python").is_file()
    ]
    if not found:
        return None
    return max(found, key=lambda path: Version(path.name)) / "bin" / "python"


@functools.cache
def pip_version(python: Path) -> Version:
    result = subprocess.run(
        [str(python), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=True,
    )
    return Version(result.stdout.split()[1])


def _clean_env() -> dict[str, str]:
    """This process's environment without any pip configuration.

    ``--isolated`` keeps pip's own settings out of the pip we run, but not out of the pip it
    starts to fill a build environment; that one would still read PIP_* variables and config
    files, and might find setuptools somewhere other than our index.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def pip_wheel(
    python: Path,
    index_url: str,
    name: str,
    version: str,
    dest: Path,
    *,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Build *name* == *version* from its sdist on *index_url* with *python*'s own pip.

    Returns pip's result (output in ``stdout``; stderr is merged into it) without checking it.
    """
    return pip_wheels(python, index_url, [(name, version)], dest, timeout=timeout)


def pip_wheels(
    python: Path,
    index_url: str,
    wanted: Iterable[tuple[str, str]],
    dest: Path,
    *,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Like :func:`pip_wheel`, for several (name, version) in one pip run.

    pip carries on past a failed build, so one failure leaves the others' wheels in *dest*.
    """
    wanted = list(wanted)
    command = [
        str(python),
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "--isolated",
        "--disable-pip-version-check",
        "--no-input",
        "--index-url",
        index_url,
        # From the sdist, even if the index has a wheel: building is what is being tested.
        "--no-binary=" + ",".join(name for name, _ in wanted),
        *(f"{name}=={version}" for name, version in wanted),
        "--wheel-dir",
        str(dest),
    ]
    if pip_version(python) < Version("23.1"):
        # Older pips fall back to "setup.py bdist_wheel" for projects with a setup.py.
        command.append("--use-pep517")
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
        timeout=timeout,
        check=False,
    )
