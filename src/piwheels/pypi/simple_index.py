"""Reading the list of every project, with its serial, from the simple index's root (PEP 691).

PyPI's root names about a million projects in some 60 MB, and is read again every time the
master looks for changes: the parse turns each entry into a record as it goes, with the cyclic
GC paused, and lets the text go as soon as it is parsed. A stale answer (a cache lagging behind
the serial already recorded) is told apart from a malformed one, since only the first is worth
asking again soon.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from piwheels.pypi.answers import ProjectList, ProjectSerial
from piwheels.pypi.errors import MalformedResponse, StaleResponse, UnsupportedIndex, excerpt
from piwheels.pypi.fetching import JsonFetcher, NotFound, header_serial, parse_json

# The package's one logger, so that logging settings name the whole client at once.
logger = logging.getLogger("piwheels.pypi")


def read_project_list(
    fetcher: JsonFetcher, url: str, *, min_serial: int | None = None
) -> ProjectList:
    """Every project on the index whose simple root is *url*, with its serial, and the index's.

    Raises :class:`StaleResponse` if the index's serial is below *min_serial* (the last one
    recorded) or its header and body disagree. Entries that are not a valid name with a
    serial are skipped with one warning for the lot.
    """
    try:
        text, headers = fetcher.fetch(url, simple=True)
    except NotFound:
        raise UnsupportedIndex(url, "HTTP 404: no simple index there") from None
    header = header_serial(url, headers)
    if min_serial is not None and header is not None and header < min_serial:
        # Known before a parse that takes seconds for PyPI's whole list.
        raise StaleResponse(url, header, min_serial)
    # The hook turns each entry into a ProjectSerial as it is parsed, so the ~1M dicts the
    # plain parse would build never exist at once.
    with _gc_paused():
        document = parse_json(text, url, hook=_project_hook)
    del text
    if not isinstance(document, dict):
        raise MalformedResponse(url, f"expected an object, got {excerpt(document)}")
    meta, entries = document.get("meta"), document.get("projects")
    if not isinstance(meta, dict) or not isinstance(entries, list):
        raise MalformedResponse(url, "expected 'meta' (an object) and 'projects' (a list)")
    _check_api_version(meta.get("api-version"), url)
    good = [entry for entry in entries if type(entry) is ProjectSerial]
    projects = {entry.canonical_name: entry for entry in good}
    if len(projects) != len(good):
        projects = _merge_duplicates(good, url)
    if len(good) != len(entries):
        bad = [entry for entry in entries if type(entry) is not ProjectSerial]
        logger.warning(
            "%s: skipped %d malformed project entries, the first: %s",
            url,
            len(bad),
            excerpt(bad[0]),
        )
    del good, entries, document
    serial = _index_serial(url, meta.get("_last-serial"), header)
    if serial is None:
        # A PEP 691 index need not say; the newest project's is the best lower bound.
        serial = max((entry.serial for entry in projects.values()), default=0)
    if min_serial is not None and serial < min_serial:
        raise StaleResponse(url, serial, min_serial)
    logger.debug("%s: %d projects at serial %d", url, len(projects), serial)
    return ProjectList(serial, projects)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic GC off for a while, as it was before afterwards.

    Parsing PyPI's list allocates millions of short-lived containers, none in a cycle, and the
    collections they trigger cost about a third of the parse. Collection is process-wide, but
    the pause lasts seconds and only delays other threads' cycles, which it then collects.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# A NamedTuple's own __new__ takes keywords and costs three times as much, a million times over.
_new_entry = tuple.__new__


def _project_hook(pairs: list[tuple[str, Any]]) -> Any:
    """An object of the root index: a :class:`ProjectSerial` if it is a valid entry, else a dict.

    Runs once per project (~1M times), hence the fast path for the usual two keys.
    """
    if len(pairs) == 2:
        (key1, value1), (key2, value2) = pairs
        if key1 == "name" and key2 == "_last-serial":
            name, serial = value1, value2
        elif key1 == "_last-serial" and key2 == "name":
            name, serial = value2, value1
        else:
            return dict(pairs)
    else:
        found = dict(pairs)
        name, serial = found.get("name"), found.get("_last-serial")
        if name is None or serial is None:
            return found
    # type() rather than isinstance(): JSON's true is a bool, and bool is an int.
    if type(name) is not str or type(serial) is not int or serial < 0:
        return dict(pairs)
    try:
        key = canonicalize_name(name, validate=True)
    except InvalidName:
        return dict(pairs)
    # Share the string when the name is already canonical, as most are.
    return _new_entry(ProjectSerial, (name, name if key == name else key, serial))


def _merge_duplicates(entries: list[Any], url: str) -> dict[str, ProjectSerial]:
    """The rare list naming a project twice (``Foo`` and ``foo``): the higher serial wins."""
    projects: dict[str, ProjectSerial] = {}
    for entry in entries:
        if type(entry) is ProjectSerial:
            other = projects.get(entry.canonical_name)
            if other is not None:
                logger.warning("%s lists %r and %r as one project", url, other.name, entry.name)
                if other.serial > entry.serial:
                    continue
            projects[entry.canonical_name] = entry
    return projects


def _check_api_version(value: object, url: str) -> None:
    try:
        major = Version(value).major if isinstance(value, str) else None
    except InvalidVersion:
        major = None
    if major is None:
        raise MalformedResponse(url, f"meta.api-version is {value!r}")
    if major != 1:
        raise UnsupportedIndex(url, f"simple API version {value}; this client speaks 1.x")


def _index_serial(url: str, body: object, header: int | None) -> int | None:
    """The root's serial from its body and header, which must agree where both exist."""
    if body is not None and (type(body) is not int or body < 0):
        raise MalformedResponse(url, f"meta._last-serial is {body!r}")
    if header is not None and body is not None and header != body:
        # One of them came from a cache: whichever it was, this page can't be trusted now.
        raise StaleResponse(url, min(header, body), max(header, body))
    return body if body is not None else header
