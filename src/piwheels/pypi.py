"""The PyPI client: which projects exist and at what serial, and what each project holds.

The project list comes from the simple index's root in PEP 691 JSON (PyPI adds a ``_last-serial``
to each project and to the page); a project's details come from PyPI's JSON API. Diffing the
list's serials against the ones recorded tells which projects changed. Every request has a
timeout, every response is checked before it is believed, and each kind of failure has its own
exception quoting the URL or name concerned, so a caller can log it and try again later.
"""

from __future__ import annotations

import gc
import json
import logging
import ssl
import threading
import urllib.error
import urllib.request

# PyPI's XML-RPC answers are parsed by expat, which since 2.4.1 refuses exponential entity
# expansion, and xmlrpc.client never resolves external entities.
import xmlrpc.client
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import Message
from http.client import HTTPConnection, HTTPException, HTTPMessage, HTTPResponse, HTTPSConnection
from operator import attrgetter
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit
from xml.parsers.expat import ExpatError

from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from piwheels import __version__

logger = logging.getLogger(__name__)

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = ("text/html", "application/vnd.pypi.simple.v1+html")
#: PyPI's root index is ~60 MB and growing; this leaves room while refusing an endless stream.
MAX_RESPONSE_BYTES = 1 << 30
_CHUNK = 1 << 20


# Errors ----------------------------------------------------------------------------------------


class PyPIError(Exception):
    """Anything that went wrong asking the index."""


class PyPIUnavailable(PyPIError):
    """The index could not answer now (network, timeout, 5xx, 429): try again later."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.url} unavailable: {self.reason}"


class StaleResponse(PyPIUnavailable):
    """The answer is older than one already seen (a cache lagging behind): try again later."""

    def __init__(self, url: str, serial: int, expected: int) -> None:
        PyPIError.__init__(self, url, serial, expected)
        self.url = url
        self.serial = serial
        self.expected = expected
        self.reason = f"serial {serial} where {expected} is known"

    def __str__(self) -> str:
        return f"{self.url} is stale: serial {self.serial} where {self.expected} is known"


class ProjectNotFound(PyPIError):
    """The index has no such project (404), or the name could not be a project's."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, url)
        self.name = name
        self.url = url

    def __str__(self) -> str:
        return f"no project {self.name!r} at {self.url}"


class MalformedResponse(PyPIError):
    """The index answered something that is not what the API promises."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"malformed response from {self.url}: {self.problem}"


class UnsupportedIndex(PyPIError):
    """The index does not speak what this client needs (PEP 691 JSON, API version 1)."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"unsupported index at {self.url}: {self.problem}"


# Records ---------------------------------------------------------------------------------------


class ProjectSerial(NamedTuple):
    """One project of the index's list: its name as displayed, its canonical name, its serial."""

    name: str
    canonical_name: str
    serial: int


class ProjectList(NamedTuple):
    """The whole list: the index's serial and every project, keyed by canonical name."""

    serial: int
    projects: dict[str, ProjectSerial]


class ProjectChanges(NamedTuple):
    """What differs from the serials a caller knows."""

    serial: int  # the index's, to record once every change below is
    changed: list[ProjectSerial]  # new or changed projects, lowest serial first
    removed: list[str]  # canonical names the index no longer lists, sorted


class VersionInfo(NamedTuple):
    """One release of a project.

    ``version`` is PyPI's string, untouched; ``valid`` says whether it parses as PEP 440 (PyPI
    still serves a few legacy versions that do not), so callers can skip the rest.
    ``released`` is the earliest upload among the release's files, None when it has no files.
    """

    version: str
    released: datetime | None
    requires_python: str | None
    has_sdist: bool
    yanked: bool
    yanked_reason: str | None
    valid: bool


class ProjectInfo(NamedTuple):
    """One project's details from the JSON API; versions in the order PyPI listed them."""

    name: str
    canonical_name: str
    serial: int
    summary: str | None
    description: str | None
    description_content_type: str | None
    versions: list[VersionInfo]


class ChangelogEntry(NamedTuple):
    """One line of XML-RPC ``changelog_since_serial``."""

    name: str
    canonical_name: str
    version: str | None
    time: datetime
    action: str
    serial: int


def diff_serials(
    known: Mapping[str, int], projects: Mapping[str, ProjectSerial]
) -> tuple[list[ProjectSerial], list[str]]:
    """The projects whose serial differs from *known*'s, and *known*'s names no longer listed.

    Both are keyed by canonical name. A serial lower than the known one counts as a change too:
    serials only grow, so the record is wrong or the project was replaced, and a fetch fixes both.
    """
    changed = [entry for key, entry in projects.items() if known.get(key) != entry.serial]
    changed.sort(key=attrgetter("serial"))
    removed = sorted(known.keys() - projects.keys())
    return changed, removed


# The client ------------------------------------------------------------------------------------


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
        # Built by hand rather than with build_opener, which would add file:, ftp: and data:.
        self._opener = urllib.request.OpenerDirector()
        self._ssl = ssl.create_default_context()
        self._proxied = set(urllib.request.getproxies())  # schemes; read once, as urllib does
        self._kept = threading.local()  # (scheme, netloc) -> this thread's open connection
        for handler in (
            urllib.request.ProxyHandler(),
            urllib.request.HTTPHandler(),
            urllib.request.HTTPSHandler(context=self._ssl),
            _RedirectHandler(),
            urllib.request.HTTPDefaultErrorHandler(),
            urllib.request.HTTPErrorProcessor(),
        ):
            self._opener.add_handler(handler)

    def list_projects(self, *, min_serial: int | None = None) -> ProjectList:
        """Every project on the index with its serial, and the index's serial.

        Raises :class:`StaleResponse` if the index's serial is below *min_serial* (the last one
        recorded) or its header and body disagree. Entries that are not a valid name with a
        serial are skipped with one warning for the lot.
        """
        url = self.simple_url
        try:
            text, headers = self._fetch(url, simple=True)
        except _NotFound:
            raise UnsupportedIndex(url, "HTTP 404: no simple index there") from None
        header = _header_serial(url, headers)
        if min_serial is not None and header is not None and header < min_serial:
            # Known before a parse that takes seconds for PyPI's whole list.
            raise StaleResponse(url, header, min_serial)
        # The hook turns each entry into a ProjectSerial as it is parsed, so the ~1M dicts the
        # plain parse would build never exist at once.
        with _gc_paused():
            document = _parse_json(text, url, hook=_project_hook)
        del text
        if not isinstance(document, dict):
            raise MalformedResponse(url, f"expected an object, got {_excerpt(document)}")
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
                _excerpt(bad[0]),
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

    def changed_projects(
        self, known: Mapping[str, int], *, min_serial: int | None = None
    ) -> ProjectChanges:
        """What changed since *known* (canonical name → serial); see :func:`diff_serials`."""
        serial, projects = self.list_projects(min_serial=min_serial)
        changed, removed = diff_serials(known, projects)
        return ProjectChanges(serial, changed, removed)

    def project(self, name: str, *, min_serial: int | None = None) -> ProjectInfo:
        """The details of project *name* from the JSON API.

        *min_serial* is the serial the project list gave for it: an older answer is a cache
        lagging behind and raises :class:`StaleResponse`.
        """
        try:
            key = canonicalize_name(name, validate=True)
        except InvalidName:
            raise ProjectNotFound(name, self.json_url) from None
        url = f"{self.json_url}{quote(key, safe='')}/json"
        try:
            text, headers = self._fetch(url, simple=False)
        except _NotFound:
            raise ProjectNotFound(name, url) from None
        document = _parse_json(text, url)
        del text
        if not isinstance(document, dict):
            raise MalformedResponse(url, f"expected an object, got {_excerpt(document)}")
        info, releases, serial = (document.get(k) for k in ("info", "releases", "last_serial"))
        if not isinstance(info, dict) or not isinstance(releases, dict):
            raise MalformedResponse(url, "expected 'info' and 'releases' objects")
        if type(serial) is not int or serial < 0:
            raise MalformedResponse(url, f"'last_serial' is {serial!r}, not a serial")
        header = _header_serial(url, headers)
        if header is not None and header != serial:
            raise StaleResponse(url, min(header, serial), max(header, serial))
        if min_serial is not None and serial < min_serial:
            raise StaleResponse(url, serial, min_serial)
        display = info.get("name")
        if not isinstance(display, str) or _canonical(display) != key:
            raise MalformedResponse(url, f"asked for {key!r}, got info.name {display!r}")
        versions = []
        for version, files in releases.items():
            if isinstance(files, list):
                versions.append(_version_info(version, files, url))
            else:
                logger.warning(
                    "%s: skipped version %r: files are %s", url, version, _excerpt(files)
                )
        return ProjectInfo(
            name=display,
            canonical_name=key,
            serial=serial,
            summary=_optional_str(info.get("summary")),
            description=_optional_str(info.get("description")),
            description_content_type=_optional_str(info.get("description_content_type")),
            versions=versions,
        )

    def changelog_since_serial(self, serial: int) -> list[ChangelogEntry]:
        """The XML-RPC changelog after *serial*, for mirrors that still offer it."""
        if self.xmlrpc_url is None:
            raise UnsupportedIndex(self.simple_url, "no XML-RPC URL configured")
        url = self.xmlrpc_url
        transport_type = _XmlRpcSafeTransport if url.startswith("https:") else _XmlRpcTransport
        transport = transport_type(self.timeout, self.user_agent)
        proxy = xmlrpc.client.ServerProxy(url, transport=transport)
        try:
            with proxy:
                rows = proxy.changelog_since_serial(serial)
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 429 or exc.errcode >= 500:
                raise PyPIUnavailable(url, f"HTTP {exc.errcode} {exc.errmsg}") from None
            raise PyPIError(f"{url}: HTTP {exc.errcode} {exc.errmsg}") from None
        except xmlrpc.client.Fault as exc:
            raise MalformedResponse(url, f"fault {exc.faultCode}: {exc.faultString}") from None
        except (TimeoutError, OSError, HTTPException) as exc:
            raise PyPIUnavailable(url, _reason(exc)) from None
        except (xmlrpc.client.ResponseError, ExpatError) as exc:
            raise MalformedResponse(url, f"bad XML-RPC response: {exc}") from None
        if not isinstance(rows, list):
            raise MalformedResponse(url, f"expected a list, got {_excerpt(rows)}")
        entries = [entry for row in rows if (entry := _changelog_entry(row)) is not None]
        if len(entries) != len(rows):
            logger.warning("%s: skipped %d malformed changelog rows", url, len(rows) - len(entries))
        return entries

    # HTTP

    def _fetch(self, url: str, *, simple: bool) -> tuple[str, Message]:
        """GET *url* as JSON (PEP 691's if *simple*, else plain): its text and headers.

        Returning text rather than bytes lets the bytes go before the JSON is parsed.
        """
        # Static mirrors may label PEP 691 pages plain JSON; the body's api-version still decides.
        json_types = (SIMPLE_JSON, "application/json") if simple else ("application/json",)
        # The scheme was checked in __init__ and redirects are checked by _RedirectHandler.
        request = urllib.request.Request(  # noqa: S310
            url,
            headers={
                "Accept": json_types[0],
                "Accept-Encoding": "gzip",  # the root list shrinks about tenfold
                "User-Agent": self.user_agent,
            },
        )
        try:
            with self._open(request) as response:
                headers = response.headers
                if response.status != 200:
                    raise MalformedResponse(url, f"HTTP {response.status} {response.reason}")
                content_type = headers.get_content_type()
                if simple and content_type in SIMPLE_HTML:
                    raise UnsupportedIndex(url, "it serves HTML only; PEP 691 JSON is needed")
                if content_type not in json_types:
                    raise MalformedResponse(url, f"Content-Type {content_type!r} is not JSON")
                raw = self._read(response, url)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (404, 410):
                raise _NotFound(url) from None
            if simple and exc.code == 406:
                raise UnsupportedIndex(url, "HTTP 406: PEP 691 JSON is needed") from None
            if exc.code == 429 or exc.code >= 500:
                raise PyPIUnavailable(url, f"HTTP {exc.code} {exc.reason}") from None
            raise PyPIError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise PyPIUnavailable(url, _reason(exc.reason)) from None
        except (TimeoutError, OSError, HTTPException) as exc:
            raise PyPIUnavailable(url, _reason(exc)) from None
        encoding = headers.get("Content-Encoding", "identity").strip().lower()
        body: bytes | bytearray = raw
        if encoding == "gzip":
            body = self._gunzip(raw, url)
        elif encoding != "identity":
            raise MalformedResponse(url, f"Content-Encoding {encoding!r} was not asked for")
        try:
            return body.decode("utf-8"), headers
        except UnicodeDecodeError as exc:
            bad = body[exc.start : exc.start + 8]
            raise MalformedResponse(url, f"not UTF-8 at byte {exc.start}: {bad!r}") from None

    @contextmanager
    def _open(self, request: urllib.request.Request) -> Iterator[HTTPResponse]:
        """The response to *request*, on this thread's kept-alive connection to its host if
        there is no proxy; an error status raises HTTPError, as urllib's opener does."""
        parts = urlsplit(request.full_url)
        if parts.scheme in self._proxied:
            with self._opener.open(request, timeout=self.timeout) as response:
                yield response
            return
        key = (parts.scheme, parts.netloc)
        kept: dict[tuple[str, str], HTTPConnection] = self._kept.__dict__.setdefault("by", {})
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            found = kept.get(key)
            reused = found is not None
            connection = found if found is not None else self._connect(parts.scheme, parts.netloc)
            kept[key] = connection
            try:
                connection.request("GET", path, headers=dict(request.header_items()))
                response = connection.getresponse()
                break
            except (ConnectionError, HTTPException):
                # A kept connection the server has since closed fails at once: try a new one.
                connection.close()
                del kept[key]
                if not reused or attempt == 2:
                    raise
        try:
            if 300 <= response.status < 400:
                # urllib follows it, with _RedirectHandler's checks
                with self._opener.open(request, timeout=self.timeout) as redirected:
                    yield redirected
            elif response.status >= 400:
                raise urllib.error.HTTPError(
                    request.full_url, response.status, response.reason, response.headers, None
                )
            else:
                yield response
        finally:
            if (response.isclosed() or response.length == 0) and not response.will_close:
                response.close()  # read to its end: the connection is ready for the next
            else:
                # unread bytes would be taken for the next response: start afresh
                connection.close()
                kept.pop(key, None)

    def _connect(self, scheme: str, netloc: str) -> HTTPConnection:
        if scheme == "https":
            return HTTPSConnection(netloc, timeout=self.timeout, context=self._ssl)
        return HTTPConnection(netloc, timeout=self.timeout)

    def _read(self, response: HTTPResponse, url: str) -> bytearray:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise MalformedResponse(url, f"{declared} bytes is over the {self.max_bytes} limit")
        body = bytearray()
        while chunk := response.read1(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                raise MalformedResponse(url, f"body over the {self.max_bytes} byte limit")
        return body

    def _gunzip(self, data: bytearray, url: str) -> bytes:
        # The limit applies to what comes out: a small gzip can expand without bound.
        decompressor = zlib.decompressobj(wbits=31)
        try:
            body = decompressor.decompress(data, self.max_bytes + 1)
        except zlib.error as exc:
            raise MalformedResponse(url, f"bad gzip body: {exc}") from None
        if len(body) > self.max_bytes:
            raise MalformedResponse(url, f"gzip body inflates past {self.max_bytes} bytes")
        if not decompressor.eof:
            raise MalformedResponse(url, "gzip body is truncated")
        return body


class _NotFound(Exception):
    """404 or 410; each caller says what was not found."""


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to http(s), and never from https down to http."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme = urlsplit(newurl).scheme
        if scheme not in ("http", "https") or (req.type == "https" and scheme != "https"):
            fp.close()
            raise PyPIError(f"{req.full_url}: refusing redirect to {newurl!r}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _XmlRpcTransport(xmlrpc.client.Transport):
    """xmlrpc.client's transport with a timeout (it has none) and our User-Agent."""

    def __init__(self, timeout: float, user_agent: str) -> None:
        super().__init__()
        self.timeout = timeout
        self.user_agent = user_agent

    def make_connection(self, host: Any) -> HTTPConnection:
        connection = super().make_connection(host)
        # Made here but opened on first use, which is when this attribute is read.
        connection.timeout = self.timeout
        return connection


class _XmlRpcSafeTransport(xmlrpc.client.SafeTransport):
    """The same over https, verifying the certificate."""

    def __init__(self, timeout: float, user_agent: str) -> None:
        super().__init__(context=ssl.create_default_context())
        self.timeout = timeout
        self.user_agent = user_agent

    def make_connection(self, host: Any) -> HTTPSConnection:
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


# Parsing ---------------------------------------------------------------------------------------


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


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")


def _reason(exc: object) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _excerpt(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _canonical(name: str) -> str | None:
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        return None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _parse_json(
    text: str, url: str, hook: Callable[[list[tuple[str, Any]]], Any] | None = None
) -> Any:
    try:
        return json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        near = text[max(exc.pos - 20, 0) : exc.pos + 20]
        raise MalformedResponse(
            url, f"bad JSON at line {exc.lineno} column {exc.colno} ({exc.msg}): {near!r}"
        ) from None
    except RecursionError:
        raise MalformedResponse(url, "JSON nested too deeply") from None


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


def _header_serial(url: str, headers: Message) -> int | None:
    value = headers.get("X-PyPI-Last-Serial")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise MalformedResponse(url, f"X-PyPI-Last-Serial is {value!r}")
    return int(value)


def _index_serial(url: str, body: object, header: int | None) -> int | None:
    """The root's serial from its body and header, which must agree where both exist."""
    if body is not None and (type(body) is not int or body < 0):
        raise MalformedResponse(url, f"meta._last-serial is {body!r}")
    if header is not None and body is not None and header != body:
        # One of them came from a cache: whichever it was, this page can't be trusted now.
        raise StaleResponse(url, min(header, body), max(header, body))
    return body if body is not None else header


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
    )


def _changelog_entry(row: object) -> ChangelogEntry | None:
    if not isinstance(row, list | tuple) or len(row) != 5:
        return None
    name, version, timestamp, action, serial = row
    if not isinstance(name, str) or (key := _canonical(name)) is None:
        return None
    if type(timestamp) is not int or type(serial) is not int or not isinstance(action, str):
        return None
    return ChangelogEntry(
        name=name,
        canonical_name=key,
        version=version if isinstance(version, str) else None,
        time=datetime.fromtimestamp(timestamp, UTC),
        action=action,
        serial=serial,
    )
