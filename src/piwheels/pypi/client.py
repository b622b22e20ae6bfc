"""The one object the master holds to ask an index about its projects.

It keeps what every question shares (the index's URLs, the timeout, the connections) and leaves
the reading of each kind of answer to its own module: the project list to
:mod:`.simple_index`, a project's details to :mod:`.json_api`, its status to :mod:`.statuses`,
the changelog to :mod:`.changelog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from piwheels import __version__
from piwheels.pypi.answers import (
    ChangelogEntry,
    ProjectChanges,
    ProjectInfo,
    ProjectList,
    diff_serials,
)
from piwheels.pypi.changelog import read_changelog
from piwheels.pypi.errors import UnsupportedIndex
from piwheels.pypi.fetching import MAX_RESPONSE_BYTES, JsonFetcher
from piwheels.pypi.json_api import read_project
from piwheels.pypi.simple_index import read_project_list
from piwheels.pypi.statuses import read_project_status
from piwheels.records.removals import ProjectStatus


class PyPIClient:
    """Asks one index (PyPI or a mirror) about its projects.

    *simple_url* is the simple index's root (``https://pypi.org/simple/``), *json_url* the JSON
    API's (``https://pypi.org/pypi``), *xmlrpc_url* the optional XML-RPC endpoint. *timeout*
    bounds connecting and each read, so a server that stops sending fails within it; a slow
    but steady download of the root list is allowed to take longer. Safe to share between
    threads: each thread keeps its own connection to each host alive between requests (one
    TCP and TLS handshake per thread, not per project: following a burst of changes is
    thousands of requests). Through a proxy, and to follow a redirect, requests go through
    urllib instead, a connection each.
    """

    def __init__(
        self,
        simple_url: str,
        json_url: str,
        *,
        xmlrpc_url: str | None = None,
        timeout: float = 30.0,
        user_agent: str = f"piwheels/{__version__}",
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        for url in (simple_url, json_url, xmlrpc_url):
            if url is not None:
                _check_url(url)
        self.simple_url = simple_url.rstrip("/") + "/"
        self.json_url = json_url.rstrip("/") + "/"
        self.xmlrpc_url = xmlrpc_url
        self.timeout = timeout
        self.user_agent = user_agent
        self.max_bytes = max_bytes
        self._fetcher = JsonFetcher(timeout=timeout, user_agent=user_agent, max_bytes=max_bytes)

    def list_projects(self, *, min_serial: int | None = None) -> ProjectList:
        """Every project on the index with its serial, and the index's serial.

        Raises :class:`~.errors.StaleResponse` if the index's serial is below *min_serial* (the
        last one recorded) or its header and body disagree. Entries that are not a valid name
        with a serial are skipped with one warning for the lot.
        """
        return read_project_list(self._fetcher, self.simple_url, min_serial=min_serial)

    def changed_projects(
        self, known: Mapping[str, int], *, min_serial: int | None = None
    ) -> ProjectChanges:
        """What changed since *known* (canonical name → serial); see :func:`.diff_serials`."""
        serial, projects = self.list_projects(min_serial=min_serial)
        changed, removed = diff_serials(known, projects)
        return ProjectChanges(serial, changed, removed)

    def project(self, name: str, *, min_serial: int | None = None) -> ProjectInfo:
        """The details of project *name* from the JSON API.

        *min_serial* is the serial the project list gave for it: an older answer is a cache
        lagging behind and raises :class:`~.errors.StaleResponse`.
        """
        return read_project(self._fetcher, self.json_url, name, min_serial=min_serial)

    def project_status(self, name: str, *, min_serial: int | None = None) -> ProjectStatus | None:
        """Project *name*'s PEP 792 status from its simple page (one request), None if the page
        says nothing usable; see :func:`.statuses.read_project_status`."""
        return read_project_status(self._fetcher, self.simple_url, name, min_serial=min_serial)

    def changelog_since_serial(self, serial: int) -> list[ChangelogEntry]:
        """The XML-RPC changelog after *serial*, for mirrors that still offer it."""
        if self.xmlrpc_url is None:
            raise UnsupportedIndex(self.simple_url, "no XML-RPC URL configured")
        return read_changelog(
            self.xmlrpc_url, serial, timeout=self.timeout, user_agent=self.user_agent
        )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
