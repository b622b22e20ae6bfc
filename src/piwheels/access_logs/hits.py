"""Which access log lines count, and as what: a wheel downloaded, an installer looking a project
up, a project's page or its JSON read.

The paths are the web output's (piwheels.web.layout). Only a complete answer counts: a GET
answered 200. HEAD, a range (206), a cache's revalidation (304) and errors do not.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import datetime

from packaging.utils import (
    InvalidName,
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from piwheels.access_logs.clients import Client, parse_user_agent
from piwheels.access_logs.lines import AccessLine

INSTALLERS = frozenset({"pip", "uv"})  # the clients whose look-ups are searches


class HitKind(enum.Enum):
    DOWNLOAD = "download"
    SEARCH = "search"  # an installer reading /simple/<name>/ (the original piwheels' word)
    PROJECT_PAGE = "project"
    PROJECT_JSON = "json"


@dataclass(frozen=True, slots=True)
class Hit:
    kind: HitKind
    project: str  # canonical
    filename: str | None  # the wheel's, for DOWNLOAD
    time: datetime
    client: Client


# The path's components after the leading slash, by what they mean. The last component of a
# directory is "" (from its trailing slash) or its index file.
_SIMPLE_INDEXES = frozenset({"", "index.html", "index.json"})
_PROJECT_INDEXES = frozenset({"", "index.html"})
_JSON_INDEXES = frozenset({"", "index.json"})


def _plain(text: str) -> bool:
    # packaging matches names case-insensitively in Unicode (the Kelvin sign passes for "k") and
    # lets a newline end a name or hide in a wheel's tags
    return text.isascii() and text.isprintable()


def _project(name: str) -> str | None:
    """The canonical form of *name* if it is a valid project name."""
    if not _plain(name):
        return None
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        return None


def _wheel_of(filename: str, project: str) -> bool:
    """Whether *filename* is a valid wheel's name, of *project*."""
    if not _plain(filename):
        return False
    try:
        name, _, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return False
    return name == project


def _classify_path(path: str) -> tuple[HitKind, str, str | None] | None:
    """What *path* is, whoever asked: a kind, a project and a wheel's name (DOWNLOAD only)."""
    parts = path.split("/")
    # ["", "simple", name, last] or ["", "project", name, last (, last)]; anything with "" or
    # ".." in the middle (doubled slashes, climbing) falls out at the name's check or the length
    if len(parts) not in (4, 5) or parts[0] != "":
        return None
    _, top, name, *rest = parts
    if top == "simple" and len(rest) == 1:
        (last,) = rest
        project = _project(name)
        if project is None:
            return None
        if last in _SIMPLE_INDEXES:
            return HitKind.SEARCH, project, None
        if last.endswith(".whl") and _wheel_of(last, project):
            return HitKind.DOWNLOAD, project, last
        return None
    if top == "project":
        project = _project(name)
        if project is None:
            return None
        if len(rest) == 1 and rest[0] in _PROJECT_INDEXES:
            return HitKind.PROJECT_PAGE, project, None
        if len(rest) == 2 and rest[0] == "json" and rest[1] in _JSON_INDEXES:
            return HitKind.PROJECT_JSON, project, None
    return None


# The same paths come back all day (a popular wheel, a project's index), and packaging's parse of
# a wheel's name costs more than the rest of a line's reading. Only paths of a sensible length
# are kept, so that hostile ones cannot fill memory.
CACHED = 512  # characters
_cached_classify_path = functools.lru_cache(maxsize=16384)(_classify_path)


def classify(line: AccessLine) -> Hit | None:
    """The hit *line* records, or None when it is not one that counts."""
    if line.status != 200 or line.method != "GET":
        return None
    path = line.path
    found = (_cached_classify_path if len(path) <= CACHED else _classify_path)(path)
    if found is None:
        return None
    kind, project, filename = found
    client = parse_user_agent(line.user_agent)
    if kind is HitKind.SEARCH and client.installer not in INSTALLERS:
        return None  # a browser or a crawler reading the index is nobody looking to install
    return Hit(kind, project, filename, line.time, client)
