"""The human side of the web output: project pages (HTML and JSON), home, search, build logs.

Every string shown comes from PyPI or a slave, so templates escape everything (Jinja2 with
autoescape on) and nothing from PyPI is ever rendered as HTML or markdown: a description is shown
as text. Pages link root-relative (``/project/...``, ``/simple/...``, ``/logs/...``), so the
output directory must be served at a site root. The project JSON is documented in
``docs/project-json.md``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape as _h
from typing import Any, NamedTuple
from urllib.parse import quote

import jinja2
from markupsafe import Markup
from packaging.utils import canonicalize_name

from piwheels.provenance import SUFFIX
from piwheels.records.builds import UNCHECKED, BuildState
from piwheels.records.projects import (
    AbiCell,
    BuildInfo,
    ProjectData,
    QueuePlace,
    SearchEntry,
    Statistics,
    VersionInfo,
    WheelFile,
)
from piwheels.web.layout import log_path
from piwheels.web.statuses import status_json, status_note, withheld_why

PROJECT_JSON_VERSION = 1  # raised whenever a field of project-json.md changes meaning or goes

# PyPI lets a description run to megabytes; a browser page of that helps nobody.
MAX_DESCRIPTION = 100_000  # characters
MAX_SEARCH_SUMMARY = 200  # characters per summary in packages.json, which holds every project
# The slave already trims its output, but a log is shown whole in a browser tab: keep the start
# (what was built, with what) and the longer end (where it failed).
MAX_LOG_HEAD = 256 * 1024  # characters
MAX_LOG_TAIL = 768 * 1024


class RecentBuild(NamedTuple):
    """A line of the home page's recent-builds list."""

    package: str  # canonical name
    version: str
    abi_tag: str
    status: bool
    built_at: datetime


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("piwheels.web", "templates"),
        autoescape=True,  # every template, whatever its name: all of our data is untrusted
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the test, not the page
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the package; skip the stat per render
    )


def render(template: str, **context: Any) -> str:
    """*template* rendered with *context*, every value escaped."""
    return _environment().get_template(template).render(**context)


# -- project pages ---------------------------------------------------------------------------


def project_page(
    project: ProjectData,
    *,
    apt_dependencies: Sequence[str],
    unowned_libraries: Sequence[str] = (),
    base_url: str | None = None,
) -> str:
    """The HTML page of *project*: install lines, every version x ABI, files and build logs.

    *base_url* (e.g. ``https://www.piwheels.org``) goes into the ``pip install`` line; without
    it the page's own origin is filled in by ``static/site.js``.
    """
    name = canonicalize_name(project.name)
    description, truncated = _cap(project.description, MAX_DESCRIPTION)
    return render(
        "project.html",
        project=project,
        name=name,
        matrix=_matrix(project),
        releases=_releases(name, project),
        status_note=status_note(project),
        description=description,
        description_truncated=truncated,
        apt_dependencies=list(apt_dependencies),
        unowned_libraries=list(unowned_libraries),
        base_url=base_url.rstrip("/") if base_url else None,
    )


# The two big tables are written here rather than as template loops: a page has a few hundred
# cells, and Jinja's per-expression cost made pages ~7x slower than the 1,000 a second the Scribe
# needs. The template's rule holds: every value from the records goes through _h (html.escape,
# quotes included); only numbers, and strings this module formats itself, go in bare.


def _matrix(project: ProjectData) -> Markup:
    """The <tr>s of the version x ABI table; each cell links the logs of its ABI's builds."""
    abis = project.abis
    listed = _with_files_section(project)
    rows = []
    for version in project.versions:
        number = _h(version.version)
        if version.version in listed:  # the version's files, further down
            number = f'<a href="#{_anchor(version.version, "files")}">{number}</a>'
        row_class, badge = (' class="yanked"', _YANKED_BADGE) if version.yanked else ("", "")
        head = (
            f'<tr id="{_anchor(version.version)}"{row_class}><th>{number}{badge}</th>'
            f"<td>{_released(version.released)}</td>"
        )
        if version.skip:
            logs = _build_links(version.builds)
            rows.append(
                f'{head}<td class="skipped" colspan="{len(abis):d}">skipped: '
                f"{_h(version.skip)}{logs}</td></tr>\n"
            )
            continue
        earlier = _earlier_builds(version)
        summaries = {b.build_id: b.summary for b in version.builds if b.summary}
        cells = []
        for abi in abis:
            cell = version.cells.get(abi, _UNKNOWN)
            state = label = _h(cell.state)
            title = reason = ""
            if cell.reason:
                text = _h(cell.reason)
                title, reason = f' title="{text}"', f"<small>{text}</small>"
                if cell.place is not None:  # the page is written once; the queue moves on
                    title = f' title="{text} at {_when(cell.place.as_of)} UTC"'
                elif cell.build_id in summaries:  # the log line that says why it failed
                    title = f' title="{_h(summaries[cell.build_id])}"'

            if cell.build_id is not None:
                label = f'<a href="{log_url(cell.build_id)}">{state}</a>'
            more = _build_links(earlier[abi]) if abi in earlier else ""
            cells.append(f'<td class="{state}"{title}>{label}{reason}{more}</td>')
        rows.append(f"{head}{''.join(cells)}</tr>\n")
    return Markup("".join(rows))  # noqa: S704 (escaped cell by cell above)


def _releases(name: str, project: ProjectData) -> Markup:
    """Per version with files: the files (link, size, SHA256); and builds no cell links."""
    parts = []
    for version in project.versions:
        orphans = _orphan_builds(project, version)
        if not (version.files or orphans):
            continue
        number = _h(version.version)
        badge = _YANKED_BADGE if version.yanked else ""
        parts.append(f'<h3 id="{_anchor(version.version, "files")}">{number}{badge}</h3>\n')
        reason = next((f.yanked for f in version.files if f.yanked), "")
        if reason:  # the uploader's, from PyPI (PEP 592)
            parts.append(f'<p class="yanked-reason">Yanked on PyPI: {_h(reason)}</p>\n')
        if version.files:
            parts.append(_FILES_HEAD)
            for file in version.files:
                if file.withheld:  # named, never linked: no one is served it
                    parts.append(
                        f'<tr><td>{_h(file.filename)} <span class="withheld">withheld: '
                        f"{_h(withheld_why(file))}</span></td>"
                        f'<td title="{file.filesize:d} bytes">{_size(file.filesize)}</td>'
                        f"<td><code>{_h(file.filehash)}</code></td></tr>\n"
                    )
                    continue
                if _PLAIN_FILENAME.fullmatch(file.filename):
                    url, text = f"/simple/{name}/{file.filename}", file.filename
                else:
                    url, text = _h(file_url(name, file.filename)), _h(file.filename)
                badge = _YANKED_BADGE if _file_yanked(version, file) is not None else ""
                if file.provenance:  # its signed provenance: piw-verify checks the wheel by it
                    badge += f' <a class="provenance" href="{url}{SUFFIX}">provenance</a>'
                if file.cross_check != UNCHECKED:  # what another builder made of it
                    badge += f' <span class="cross-check">{_h(file.cross_check)}</span>'
                parts.append(
                    f'<tr><td><a href="{url}">{text}</a>{badge}</td>'
                    f'<td title="{file.filesize:d} bytes">{_size(file.filesize)}</td>'
                    f"<td><code>{_h(file.filehash)}</code></td></tr>\n"
                )
            parts.append("</tbody></table>\n")
        if orphans:
            parts.append(f'<p class="builds">Builds for other ABIs:{_build_links(orphans)}</p>\n')
    return Markup("".join(parts))  # noqa: S704 (escaped value by value above)


def _anchor(version: str, part: str = "v") -> str:
    """The id of a version's row (``v-``) or of its files (``files-``); %-encoded so that the
    #fragment pointing at it is a URL."""
    return f"{part}-" + quote(version, safe="+!")


def _orphan_builds(project: ProjectData, version: VersionInfo) -> list[BuildInfo]:
    """Builds for an ABI the farm no longer has: no column of their own to link them."""
    if version.skip:
        return []
    abis = set(project.abis)
    earlier = _earlier_builds(version)
    return [build for abi, builds in earlier.items() if abi not in abis for build in builds]


def _with_files_section(project: ProjectData) -> set[str]:
    """The versions :func:`_releases` gives a section of their own."""
    return {v.version for v in project.versions if v.files or _orphan_builds(project, v)}


def _earlier_builds(version: VersionInfo) -> dict[str, list[BuildInfo]]:
    """The builds of each ABI that its cell does not already link (earlier attempts)."""
    shown = {cell.build_id for cell in version.cells.values()}
    earlier: dict[str, list[BuildInfo]] = {}
    for build in version.builds:
        if build.build_id not in shown:
            earlier.setdefault(build.abi_tag, []).append(build)
    return earlier


def _build_links(builds: list[BuildInfo]) -> str:
    return "".join(
        f' <a class="attempt {"built" if build.status else "failed"}" '
        f'href="{log_url(build.build_id)}" title="{_h(build.abi_tag)} '
        f'{"built" if build.status else "failed"}">#{build.build_id:d}</a>'
        for build in builds
    )


_UNKNOWN = AbiCell(BuildState.PENDING, "", None)  # an ABI added after the version was seen
_YANKED_BADGE = ' <span class="badge">yanked</span>'
_FILES_HEAD = (
    '<table class="files"><thead><tr><th>File</th><th>Size</th><th>SHA256</th></tr></thead>'
    "<tbody>\n"
)
# Wheel filenames that need neither %-encoding in a URL nor escaping in HTML: nearly all.
_PLAIN_FILENAME = re.compile(r"[A-Za-z0-9_.+!-]+")


def project_json(
    project: ProjectData, apt_dependencies: Sequence[str] = (), *, base_url: str | None = None
) -> bytes:
    """The same data as :func:`project_page`, as JSON; see docs/project-json.md. With
    *base_url*, ``index_url`` is absolute (what ``pip install --index-url`` takes)."""
    name = canonicalize_name(project.name)
    description, truncated = _cap(project.description, MAX_DESCRIPTION)
    data = {
        "meta": {"version": PROJECT_JSON_VERSION},
        "name": name,
        "display_name": project.display_name,
        "summary": project.summary,
        "description": description,
        "description_truncated": truncated,
        "abis": list(project.abis),
        "apt_dependencies": list(apt_dependencies),
        "index_url": f"{(base_url or '').rstrip('/')}/simple/{name}/",
        "downloads": project.downloads._asdict(),
        "project_status": status_json(project),
        "versions": [_version_json(name, project.abis, version) for version in project.versions],
    }
    return json.dumps(data, separators=(",", ":")).encode("ascii") + b"\n"


def _version_json(name: str, abis: list[str], version: VersionInfo) -> dict[str, Any]:
    builds = {build.build_id: build for build in version.builds}
    return {
        "version": version.version,
        "released": _iso(version.released) if version.released else None,
        "yanked": version.yanked,
        "skip": version.skip or None,
        "abis": {abi: _cell_json(version.cells.get(abi, _UNKNOWN), builds) for abi in abis},
        "builds": [_build_json(build) for build in version.builds],
        "files": [_file_json(name, version, file) for file in version.files],
    }


def _cell_json(cell: AbiCell, builds: dict[int, BuildInfo]) -> dict[str, Any]:
    build = builds.get(cell.build_id) if cell.build_id is not None else None
    failure = build if build is not None and not build.status else None
    return {
        "state": str(cell.state),
        "reason": cell.reason or None,
        "build_id": cell.build_id,
        "log_url": log_url(cell.build_id) if cell.build_id is not None else None,
        "queue": _place_json(cell.place) if cell.place is not None else None,
        "cause": failure.cause if failure else None,
        "summary": (failure.summary or None) if failure else None,
        "needs": list(failure.needs) if failure else [],
    }


QUEUE_TIERS = ("priority", "newest", "backlog")  # the JSON's names of tiers 0, 1 and 2


def _place_json(place: QueuePlace) -> dict[str, Any]:
    return {
        "tier": QUEUE_TIERS[min(place.tier, 2)],
        "rank": place.rank,
        "ahead": place.ahead,
        "ahead_at_most": place.ahead_at_most,
        "as_of": _iso(place.as_of),
    }


def _build_json(build: BuildInfo) -> dict[str, Any]:
    return {
        "build_id": build.build_id,
        "abi": build.abi_tag,
        "status": "built" if build.status else "failed",
        "built_at": _iso(build.built_at),
        "duration": build.duration.total_seconds(),
        "built_by": build.built_by,
        "log_url": log_url(build.build_id),
        "outcome": build.outcome,
        "cause": build.cause,
        "summary": build.summary or None,
        "needs": list(build.needs),
        "retry_at": _iso(build.retry_at) if build.retry_at is not None else None,
        "requeued": build.requeued,
    }


def _file_json(name: str, version: VersionInfo, file: WheelFile) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "url": None if file.withheld else file_url(name, file.filename),
        "size": file.filesize,
        "sha256": file.filehash,
        "abi": file.abi_tag,
        "requires_python": file.requires_python or None,
        "uploaded": _iso(file.uploaded),
        "yanked": _file_yanked(version, file),
        "metadata_sha256": file.metadata_hash,
        "provenance_url": file_url(name, file.filename) + SUFFIX if file.provenance else None,
        "cross_check": file.cross_check,
        "withheld": file.withheld,
        "withheld_for": list(file.withheld_for),
        "apt_dependencies": list(file.apt_dependencies),
        "unowned_libraries": list(file.unowned_libraries),
    }


def _file_yanked(version: VersionInfo, file: WheelFile) -> str | None:
    """None, or why the file is yanked ("" for no reason); a yanked version yanks its files."""
    if file.yanked is None and version.yanked:
        return ""
    return file.yanked


def file_url(project: str, filename: str) -> str:
    """The root-relative URL of a wheel in the index."""
    return f"/simple/{project}/{quote(filename, safe='+!')}"


# Cached: a page asks for each log's URL up to three times (its cell, its build, the JSON).
@functools.lru_cache(maxsize=4096)
def log_url(build_id: int) -> str:
    """The root-relative URL of a build's log (the server adds the gzip encoding)."""
    return "/" + log_path(build_id).removesuffix(".gz")


# -- home and search ----------------------------------------------------------------------


def home_page(
    stats: Statistics, recent: Sequence[RecentBuild] = (), *, base_url: str | None = None
) -> str:
    """The home page: Big Brother's figures and, when given, the latest builds; *base_url*
    as for :func:`project_page`."""
    disk_used = 1 - stats.disk_free / stats.disk_total if stats.disk_total else 0.0
    return render(
        "home.html",
        stats=stats,
        recent=list(recent),
        # in the farm's ABI order, as Big Brother gives it
        queue=[
            (
                abi,
                stats.queue_priority.get(abi, 0),
                stats.queue_newest.get(abi, 0),
                waiting - stats.queue_priority.get(abi, 0) - stats.queue_newest.get(abi, 0),
                waiting,
            )
            for abi, waiting in stats.queue.items()
        ],
        failures=[
            (abi, cause, count)
            for abi, causes in stats.failures_by_cause.items()
            for cause, count in causes.items()
        ],
        disk_used=disk_used,
        when=_when,
        size=_size,
        base_url=base_url.rstrip("/") if base_url else None,
    )


def search_page() -> str:
    """The search page; static/search.js does the searching, in the browser."""
    return render("search.html")


def search_index(entries: Iterable[SearchEntry]) -> bytes:
    """packages.json: ``[[name, summary, versions, files], ...]`` for static/search.js.

    Arrays rather than objects: the file holds every project, and keys would double its size.
    """
    rows = [
        [entry.name, entry.summary[:MAX_SEARCH_SUMMARY], entry.versions, entry.files]
        for entry in entries
    ]
    # Not ASCII-escaped: summaries in other scripts would grow sixfold as \\uXXXX.
    text = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "replace")


def build_log(text: str) -> str:
    """A build's output as the plain text to gzip and serve as text/plain.

    Never HTML: a log holds whatever a setup.py printed. Absurdly long logs keep their start and
    end, with a line saying how much was cut; NULs are replaced, since browsers treat a
    text/plain body with NULs as binary and offer a download instead.
    """
    if len(text) > MAX_LOG_HEAD + MAX_LOG_TAIL:
        cut = len(text) - MAX_LOG_HEAD - MAX_LOG_TAIL
        text = (
            f"{text[:MAX_LOG_HEAD]}\n\n[... {cut:,} characters of this log omitted ...]\n\n"
            f"{text[-MAX_LOG_TAIL:]}"
        )
    return text.replace("\0", "\ufffd")


# -- formatting ------------------------------------------------------------------------------


def _cap(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit], True


# Cached: a wheel's upload time is its build's time, so each is formatted twice in the JSON.
@functools.lru_cache(maxsize=4096)
def _iso(when: datetime) -> str:
    """UTC, to the second, with a Z; a naive time is taken as UTC already."""
    # isoformat and slicing rather than astimezone + strftime: this runs for every build and
    # file, and the records' times are nearly always UTC already.
    if when.utcoffset():
        when = when.astimezone(UTC)
    text = when.isoformat(timespec="seconds")
    return f"{text[:19]}Z"


def _released(when: datetime | None) -> str:
    """A release time for the version table: PyPI has none for a version without files."""
    if when is None:
        return '<span class="unknown" title="PyPI has no file of this version">unknown</span>'
    return _when(when)


def _when(when: datetime) -> str:
    """UTC, to the minute, for people."""
    if when.utcoffset():
        when = when.astimezone(UTC)
    return when.isoformat(" ", "minutes")[:16]


def _size(count: int) -> str:
    if count < 1000:
        return f"{count:d} B"
    value = count / 1000
    for unit in ("kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
