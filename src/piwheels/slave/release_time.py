"""When a version's sdist was uploaded, from the index itself: the build's SOURCE_DATE_EPOCH.

Build backends that honour SOURCE_DATE_EPOCH (the reproducible-builds convention: wheel,
setuptools, flit, hatchling, maturin, meson-python) stamp it on every file of the wheel instead of
the moment of the build, so two builders of the same ABI and platform can make byte-identical
wheels: what a later cross-check of builders compares. The sdist's upload time is the one moment
every builder agrees on, read from the index's JSON page (PEP 691, with PEP 700's upload-time).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import quote, urljoin

from packaging.utils import (
    InvalidSdistFilename,
    canonicalize_name,
    canonicalize_version,
    parse_sdist_filename,
)

log = logging.getLogger(__name__)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TIMEOUT = 10.0  # seconds: the build waits for the answer
MAX_PAGE = 64 * 1024 * 1024  # bytes: PyPI's largest project pages are a few MB
# The earliest time a zip file can hold: for an index that does not say when (no PEP 700),
# still one value every builder agrees on.
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z


def sdist_upload_time(index_url: str, package: str, version: str) -> datetime | None:
    """When *package* *version*'s sdist was uploaded to the index at *index_url*, or None if
    the index does not say (or cannot be asked)."""
    url = urljoin(index_url if index_url.endswith("/") else f"{index_url}/", quote(package) + "/")
    request = urllib.request.Request(url, headers={"Accept": JSON_TYPE})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            if not response.headers.get("Content-Type", "").startswith(JSON_TYPE):
                return None
            page = json.loads(response.read(MAX_PAGE))
    except (OSError, ValueError, urllib.error.URLError) as exc:
        log.warning("cannot read the upload time of %s %s: %s", package, version, exc)
        return None
    wanted = canonicalize_version(version)
    for file in page.get("files", []) if isinstance(page, dict) else []:
        try:
            name, found = parse_sdist_filename(str(file.get("filename", "")))
        except InvalidSdistFilename:
            continue
        if name != canonicalize_name(package) or canonicalize_version(found) != wanted:
            continue
        when = file.get("upload-time")
        try:
            return datetime.fromisoformat(str(when)).astimezone(UTC)
        except ValueError:
            return None
    return None


def source_date_epoch(index_url: str, package: str, version: str) -> tuple[int, str]:
    """SOURCE_DATE_EPOCH for a build, and where it came from (for the build's log)."""
    uploaded = sdist_upload_time(index_url, package, version)
    if uploaded is None:
        return ZIP_EPOCH, "the index does not say when the sdist was uploaded: 1980-01-01"
    return int(uploaded.timestamp()), f"the sdist's upload time, {uploaded.isoformat()}"
