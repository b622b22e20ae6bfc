"""Reading a project's status (PEP 792: active, archived, quarantined, deprecated) from its page
in the simple index.

The status is only in the simple API (version 1.4 on): in the JSON form as ``"project-status":
{"status": ..., "reason": ...}`` beside ``meta``, in the HTML form as ``pypi:project-status`` and
``pypi:project-status-reason`` meta tags. PyPI's JSON API does not carry it, so following a
project costs one more request: its simple page, in JSON, on the connection already open to the
index. An index below 1.4, or a page without the key, means "active". What the index says
wrong (an unknown status, a reason that is no string or is huge) is logged once and read as
"active" or no reason: a status is never worth losing the project's details for. A page that
cannot be read at all says nothing (None), and the status on record stands; only a page older
than the project's details, or an index that cannot answer now, is worth asking again.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from piwheels.pypi.errors import PyPIError, PyPIUnavailable, StaleResponse, excerpt
from piwheels.pypi.fetching import JsonFetcher, NotFound, header_serial, parse_json
from piwheels.records.removals import MAX_STATUS_REASON, STATUSES, ProjectStatus

# The package's one logger, so that logging settings name the whole client at once.
logger = logging.getLogger("piwheels.pypi")

ACTIVE = ProjectStatus("active")
STATUS_API = Version("1.4")  # the simple API's version that brought PEP 792's markers


def read_project_status(
    fetcher: JsonFetcher, simple_url: str, name: str, *, min_serial: int | None = None
) -> ProjectStatus | None:
    """The status of project *name* from its page under the simple index *simple_url* (ending
    in "/"), or None if the page says nothing usable.

    *min_serial* is the serial of what is known of the project already (its JSON API answer):
    an older page is a cache lagging behind and raises :class:`StaleResponse`, as does an index
    that cannot answer now (:class:`~.errors.PyPIUnavailable`).
    """
    try:
        key = canonicalize_name(name, validate=True)
    except InvalidName:
        return None
    url = f"{simple_url}{quote(key, safe='')}/"
    try:
        text, headers = fetcher.fetch(url, simple=True)
        document = parse_json(text, url)
    except NotFound:
        return None
    except PyPIUnavailable:
        raise
    except PyPIError as exc:  # malformed, HTML only, refused: nothing usable said
        logger.warning("%s (its status taken as unchanged)", exc)
        return None
    if not isinstance(document, dict) or not isinstance(document.get("meta"), dict):
        logger.warning("%s: no 'meta' object (its status taken as unchanged)", url)
        return None
    meta = document["meta"]
    _check_serial(url, header_serial(url, headers), meta.get("_last-serial"), min_serial)
    try:
        api = Version(meta["api-version"]) if isinstance(meta.get("api-version"), str) else None
    except InvalidVersion:
        api = None
    if api is None or api.major != 1:
        logger.warning(
            "%s: meta.api-version is %s (its status taken as unchanged)",
            url,
            excerpt(meta.get("api-version")),
        )
        return None
    if api < STATUS_API or "project-status" not in document:
        return ACTIVE
    return parse_status(document["project-status"], url)


def parse_status(marker: Any, url: str) -> ProjectStatus:
    """A page's ``project-status`` object as a :class:`ProjectStatus`, what is wrong in it
    logged (once, in one line) and read as "active" or no reason."""
    if not isinstance(marker, dict):
        logger.warning("%s: project-status is %s, taken as active", url, excerpt(marker))
        return ACTIVE
    status, reason = marker.get("status", "active"), marker.get("reason")
    if not isinstance(status, str) or status not in STATUSES:
        logger.warning("%s: unknown project-status %s, taken as active", url, excerpt(status))
        return ACTIVE
    if reason is not None and not isinstance(reason, str):
        logger.warning("%s: project-status reason %s ignored", url, excerpt(reason))
        reason = None
    elif reason is not None and len(reason) > MAX_STATUS_REASON:
        logger.warning(
            "%s: project-status reason of %d characters ignored (%s at most)",
            url,
            len(reason),
            MAX_STATUS_REASON,
        )
        reason = None
    return ProjectStatus(status, reason or None)


def _check_serial(url: str, header: int | None, body: object, min_serial: int | None) -> None:
    """A page older than what is known of the project is a cache lagging behind."""
    serials = [header] if header is not None else []
    if type(body) is int and body >= 0:
        serials.append(body)
    if min_serial is not None and serials and min(serials) < min_serial:
        raise StaleResponse(url, min(serials), min_serial)
