"""The package index pip and uv install from: PEP 503/592/629/658/691/700/714/792.

Each page is first built as one PEP 691 dict, then rendered twice: as JSON (``index.json``,
served as ``application/vnd.pypi.simple.v1+json``) and as HTML (``index.html``). Both forms
therefore always list the same files with the same hashes. The HTML form is frozen at what
PEP 503/592/629/658/714 define, and PEP 792's status markers; fields added later (PEP 700's
size, upload-time, versions) exist only in the JSON.

URLs are relative (``<name>/`` in the root, the bare filename in a project page), so the index
works wherever the output directory is mounted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from piwheels.records.projects import ProjectData

API_VERSION = "1.1"  # PEP 700 raised the JSON form to 1.1; PEP 629 puts it in the HTML too
# A project page passing on PyPI's status (PEP 792) must say 1.4; the rest say what they use.
STATUS_API_VERSION = "1.4"
JSON_CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"

# PEP 714 allows the old HTML attribute beside data-core-metadata, and PyPI still sends both.
# We do not: pip before 23.2 compared the metadata's Name with the requested name
# case-sensitively (pip issues 12038 and 12108), so such a pip (Debian 12 ships 23.0.1) reading
# our HTML from a plain static server would fail `pip install pyyaml` where the Name is "PyYAML".
# Without the old attribute those pips simply download the wheel; newer pips read the new one.
LEGACY_HTML_METADATA = False

_NAME_CHARACTERS = b"abcdefghijklmnopqrstuvwxyz0123456789-"
_CANONICAL_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def simple_root(projects: Iterable[str]) -> tuple[str, bytes]:
    """The root page (HTML, JSON) listing *projects*, which must be canonical names.

    Written every few seconds with a million names, so both forms are joined as strings rather
    than built per row: canonical names need no escaping in HTML or JSON, which
    :func:`_all_canonical` checks in one pass. The order given is kept.
    """
    names = list(projects)
    if not _all_canonical(names):
        bad = next(name for name in names if not _CANONICAL_NAME.fullmatch(name))
        raise ValueError(f"not a canonical project name: {bad!r}")
    html = "".join(
        (
            _html_head("Simple index"),
            "".join([f'<a href="{name}/">{name}</a><br>\n' for name in names]),
            "</body>\n</html>\n",
        )
    )
    rows = '{"name":"' + '"},\n{"name":"'.join(names) + '"}' if names else ""
    body = f'{{"meta":{{"api-version":"{API_VERSION}"}},"projects":[\n{rows}]}}\n'
    return html, body.encode("ascii")


def _all_canonical(names: list[str]) -> bool:
    # A regex per name, or over the joined names, takes longer than writing the page; checking
    # the characters with one bytes.translate and the hyphens with substring searches does not.
    if not names:
        return True
    joined = "\n".join(names).encode("utf-8", "replace")
    if joined.translate(None, _NAME_CHARACTERS + b"\n") or joined.count(b"\n") >= len(names):
        return False  # a character outside [a-z0-9-], or a newline inside a name
    framed = b"\n" + joined + b"\n"
    return not any(bad in framed for bad in (b"\n\n", b"--", b"\n-", b"-\n"))


def simple_project(project: ProjectData) -> tuple[str, bytes]:
    """One project's page (HTML, JSON): every file, yanked ones marked, newest version first."""
    detail = project_detail(project)
    return render_html(detail), render_json(detail)


def project_detail(project: ProjectData) -> dict[str, Any]:
    """The PEP 691 (+ PEP 700, 714) dict of *project*, from which both forms are rendered."""
    files: list[dict[str, Any]] = []
    versions: dict[str, None] = {}  # an ordered set: PEP 700 forbids duplicates
    for version in project.versions:
        for file in version.files:
            if file.withheld:  # served to no one until an operator decides
                continue
            yanked: bool | str = False
            if file.yanked is not None or version.yanked:
                # PEP 691: a reason is a non-empty string; with none, yanked is plain true.
                yanked = file.yanked or True
            files.append(
                {
                    "filename": file.filename,
                    "url": quote(file.filename, safe="+!"),
                    "hashes": {"sha256": file.filehash},
                    "requires-python": file.requires_python or None,
                    "yanked": yanked,
                    # Not "dist-info-metadata" as well: pips from 22.3 until 23.2 crash on that
                    # JSON key (PEP 714), and piwheels' users run Debian's older pips.
                    "core-metadata": (
                        {"sha256": file.metadata_hash} if file.metadata_hash else False
                    ),
                    "size": file.filesize,
                    "upload-time": _upload_time(file.uploaded),
                }
            )
        if version.files:
            versions[_normal_version(version.version)] = None
    detail: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": canonicalize_name(project.name),
        "files": files,
        "versions": list(versions),
    }
    if project.status != "active":
        # PEP 792: PyPI's status passed on, so that installers can warn as they would from
        # PyPI; a quarantined project's files are withheld (see migration 0018)
        detail["meta"]["api-version"] = STATUS_API_VERSION
        detail["project-status"] = {"status": project.status}
        if project.status_reason:
            detail["project-status"]["reason"] = project.status_reason
    return detail


def render_json(detail: dict[str, Any]) -> bytes:
    # ensure_ascii: a stray lone surrogate from PyPI stays a valid escape rather than breaking
    # the UTF-8 encoding of the whole page.
    return json.dumps(detail, separators=(",", ":")).encode("ascii") + b"\n"


def render_html(detail: dict[str, Any]) -> str:
    name = escape(detail["name"])
    rows = []
    for file in detail["files"]:
        attributes = [f'href="{escape(file["url"])}#sha256={escape(file["hashes"]["sha256"])}"']
        if file["requires-python"] is not None:
            attributes.append(f'data-requires-python="{escape(file["requires-python"])}"')
        if file["yanked"] is not False:
            reason = "" if file["yanked"] is True else file["yanked"]
            attributes.append(f'data-yanked="{escape(reason)}"')
        if file["core-metadata"]:
            value = escape(f"sha256={file['core-metadata']['sha256']}")
            attributes.append(f'data-core-metadata="{value}"')
            if LEGACY_HTML_METADATA:
                attributes.append(f'data-dist-info-metadata="{value}"')
        rows.append(f"<a {' '.join(attributes)}>{escape(file['filename'])}</a><br>\n")
    return "".join(
        (
            _html_head(f"Links for {name}", detail["meta"]["api-version"], _status_meta(detail)),
            f"<h1>Links for {name}</h1>\n",
            *rows,
            "</body>\n</html>\n",
        )
    )


def _html_head(title: str, api_version: str = API_VERSION, extra: str = "") -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta charset="utf-8">\n'
        f'<meta name="pypi:repository-version" content="{api_version}">\n'
        f"{extra}<title>{title}</title>\n</head>\n<body>\n"
    )


def _status_meta(detail: dict[str, Any]) -> str:
    """PEP 792's meta tags for the HTML form: the status, and its reason if any."""
    status = detail.get("project-status")
    if status is None:
        return ""
    tags = f'<meta name="pypi:project-status" content="{escape(status["status"])}">\n'
    if "reason" in status:
        tags += f'<meta name="pypi:project-status-reason" content="{escape(status["reason"])}">\n'
    return tags


def _upload_time(when: datetime) -> str:
    # PEP 700 fixes the format: UTC with a literal Z. A naive time is taken as UTC already.
    if when.utcoffset():
        when = when.astimezone(UTC)
    return f"{when.isoformat(timespec='microseconds')[:26]}Z"


def _normal_version(version: str) -> str:
    # PEP 700: normalised PEP 440 versions where possible; legacy ones pass through as given.
    try:
        return str(Version(version))
    except InvalidVersion:
        return version
