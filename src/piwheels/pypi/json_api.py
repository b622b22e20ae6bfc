"""Reading one project's details (its releases and their files) from PyPI's JSON API.

What piwheels needs of a release is summed up from its files: when it was first uploaded,
whether there is an sdist to build, which Pythons it supports, whether it was yanked. PyPI still
serves releases whose versions are not PEP 440 and files with fields missing or malformed; those
are flagged or skipped, never a reason to lose the rest of the project.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urljoin

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from piwheels.pypi.answers import ProjectInfo, VersionInfo, canonical_name
from piwheels.pypi.errors import MalformedResponse, ProjectNotFound, StaleResponse, excerpt
from piwheels.pypi.fetching import JsonFetcher, NotFound, header_serial, parse_json

# The package's one logger, so that logging settings name the whole client at once.
logger = logging.getLogger("piwheels.pypi")

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_SDIST_URL = 2000  # the width of versions.sdist_url (migration 0015)


def read_project(
    fetcher: JsonFetcher, json_url: str, name: str, *, min_serial: int | None = None
) -> ProjectInfo:
    """The details of project *name* from the JSON API rooted at *json_url* (ending in "/").

    *min_serial* is the serial the project list gave for it: an older answer is a cache
    lagging behind and raises :class:`StaleResponse`.
    """
    try:
        key = canonicalize_name(name, validate=True)
    except InvalidName:
        raise ProjectNotFound(name, json_url) from None
    url = f"{json_url}{quote(key, safe='')}/json"
    try:
        text, headers = fetcher.fetch(url, simple=False)
    except NotFound:
        raise ProjectNotFound(name, url) from None
    document = parse_json(text, url)
    del text
    if not isinstance(document, dict):
        raise MalformedResponse(url, f"expected an object, got {excerpt(document)}")
    info, releases, serial = (document.get(k) for k in ("info", "releases", "last_serial"))
    if not isinstance(info, dict) or not isinstance(releases, dict):
        raise MalformedResponse(url, "expected 'info' and 'releases' objects")
    if type(serial) is not int or serial < 0:
        raise MalformedResponse(url, f"'last_serial' is {serial!r}, not a serial")
    header = header_serial(url, headers)
    if header is not None and header != serial:
        raise StaleResponse(url, min(header, serial), max(header, serial))
    if min_serial is not None and serial < min_serial:
        raise StaleResponse(url, serial, min_serial)
    display = info.get("name")
    if not isinstance(display, str) or canonical_name(display) != key:
        raise MalformedResponse(url, f"asked for {key!r}, got info.name {display!r}")
    versions = []
    for version, files in releases.items():
        if isinstance(files, list):
            versions.append(_version_info(version, files, url))
        else:
            logger.warning("%s: skipped version %r: files are %s", url, version, excerpt(files))
    return ProjectInfo(
        name=display,
        canonical_name=key,
        serial=serial,
        summary=_optional_str(info.get("summary")),
        description=_optional_str(info.get("description")),
        description_content_type=_optional_str(info.get("description_content_type")),
        versions=versions,
    )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _upload_time(file: dict[str, Any]) -> datetime | None:
    value = file.get("upload_time_iso_8601") or file.get("upload_time")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # The older upload_time field has no zone; PyPI means UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _version_info(version: str, files: list[Any], url: str) -> VersionInfo:
    try:
        Version(version)
        valid = True
    except InvalidVersion:
        valid = False
    good = [file for file in files if isinstance(file, dict)]
    if len(good) != len(files):
        logger.warning(
            "%s: version %r has %d malformed files", url, version, len(files) - len(good)
        )
    times = [moment for file in good if (moment := _upload_time(file)) is not None]
    sdists = [file for file in good if file.get("packagetype") == "sdist"]
    requires_python = None
    for file in sdists + good:
        value = file.get("requires_python")
        if isinstance(value, str) and value.strip():
            requires_python = value.strip()
            break
    # PyPI yanks whole releases; a release counts as yanked only if every file says so.
    yanked = bool(good) and all(file.get("yanked") is True for file in good)
    reasons = [file.get("yanked_reason") for file in good] if yanked else []
    return VersionInfo(
        version=version,
        released=min(times, default=None),
        requires_python=requires_python,
        has_sdist=bool(sdists),
        yanked=yanked,
        yanked_reason=next((r for r in reasons if isinstance(r, str) and r), None),
        valid=valid,
        **_sdist(sdists, url),
    )


def _sdist(sdists: list[dict[str, Any]], document: str) -> dict[str, str]:
    """The sdist pip would take (the first listed) with its SHA256, for the provenance of the
    wheels built from it; nothing where the index gives no usable URL and digest. A mirror may
    give URLs relative to the JSON *document*'s, as pip would resolve them."""
    for file in sdists:
        url, digests = file.get("url"), file.get("digests")
        if not isinstance(url, str):
            url = None
        elif not url.startswith(("https://", "http://")):  # PyPI's are absolute: no urljoin
            url = urljoin(document, url)
        sha256 = digests.get("sha256") if isinstance(digests, dict) else None
        if (
            isinstance(url, str)
            and url.startswith(("https://", "http://"))
            and len(url) <= MAX_SDIST_URL
            and isinstance(sha256, str)
            and SHA256_HEX.fullmatch(sha256)
        ):
            return {"sdist_url": url, "sdist_sha256": sha256}
    return {}
