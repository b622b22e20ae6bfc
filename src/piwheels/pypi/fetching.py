"""GETting JSON from the index, so that the readers of each kind of answer only read.

Following a burst of changes is thousands of requests to one host: each thread keeps its own
connection to each host alive between requests (one TCP and TLS handshake per thread, not per
project). Through a proxy, and to follow a redirect, requests go through urllib instead, a
connection each. A body is bounded both as sent and as gunzipped, and every failure becomes one
of :mod:`piwheels.pypi.errors`' exceptions, naming the URL.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from http.client import HTTPConnection, HTTPException, HTTPMessage, HTTPResponse, HTTPSConnection
from typing import Any
from urllib.parse import urlsplit

from piwheels.pypi.errors import (
    MalformedResponse,
    PyPIError,
    PyPIUnavailable,
    UnsupportedIndex,
    failure_reason,
)

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = ("text/html", "application/vnd.pypi.simple.v1+html")
#: PyPI's root index is ~60 MB and growing; this leaves room while refusing an endless stream.
MAX_RESPONSE_BYTES = 1 << 30
_CHUNK = 1 << 20
# An answer left unread (a 404's page, say: PyPI's is 4 kB) is read to its end if it is this
# small, so that the connection serves the next request; a bigger one closes it.
_DRAIN_LIMIT = 64 * 1024


class NotFound(Exception):
    """404 or 410; each caller says what was not found."""


class JsonFetcher:
    """GETs JSON documents; safe to share between threads, each keeping its own connections.

    *timeout* bounds connecting and each read, so a server that stops sending fails within it;
    a slow but steady download of the root list is allowed to take longer. *max_bytes* bounds a
    body, before and after gunzip.
    """

    def __init__(self, *, timeout: float, user_agent: str, max_bytes: int) -> None:
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

    def fetch(self, url: str, *, simple: bool) -> tuple[str, Message]:
        """GET *url* as JSON (PEP 691's if *simple*, else plain): its text and headers.

        Returning text rather than bytes lets the bytes go before the JSON is parsed. Raises
        :class:`NotFound` for a 404 or 410, which only the caller can put into words.
        """
        # Static mirrors may label PEP 691 pages plain JSON; the body's api-version still decides.
        json_types = (SIMPLE_JSON, "application/json") if simple else ("application/json",)
        asked = {
            "Accept": json_types[0],
            "Accept-Encoding": "gzip",  # the root list shrinks about tenfold
            "User-Agent": self.user_agent,
        }
        try:
            with self._open(url, asked) as response:
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
                raise NotFound(url) from None
            if simple and exc.code == 406:
                raise UnsupportedIndex(url, "HTTP 406: PEP 691 JSON is needed") from None
            if exc.code == 429 or exc.code >= 500:
                raise PyPIUnavailable(url, f"HTTP {exc.code} {exc.reason}") from None
            raise PyPIError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise PyPIUnavailable(url, failure_reason(exc.reason)) from None
        except (TimeoutError, OSError, HTTPException) as exc:
            raise PyPIUnavailable(url, failure_reason(exc)) from None
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
    def _open(self, url: str, headers: dict[str, str]) -> Iterator[HTTPResponse]:
        """The response to a GET of *url*, on this thread's kept-alive connection to its host
        if there is no proxy; an error status raises HTTPError, as urllib's opener does."""
        parts = urlsplit(url)
        if parts.scheme in self._proxied:
            with self._opener.open(self._request(url, headers), timeout=self.timeout) as response:
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
                connection.request("GET", path, headers=headers)
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
                request = self._request(url, headers)
                with self._opener.open(request, timeout=self.timeout) as redirected:
                    yield redirected
            elif response.status >= 400:
                raise urllib.error.HTTPError(
                    url, response.status, response.reason, response.headers, None
                )
            else:
                yield response
        finally:
            if _drained(response) and not response.will_close:
                response.close()  # read to its end: the connection is ready for the next
            else:
                # unread bytes would be taken for the next response: start afresh
                connection.close()
                kept.pop(key, None)

    @staticmethod
    def _request(url: str, headers: dict[str, str]) -> urllib.request.Request:
        """*url* as urllib's opener takes it: only through a proxy or to follow a redirect,
        as building one costs more than the rest of a GET on a kept connection."""
        # The scheme was checked by the client and redirects are checked by _RedirectHandler.
        return urllib.request.Request(url, headers=headers)  # noqa: S310

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


def _drained(response: HTTPResponse) -> bool:
    """Whether *response* has been read to its end, reading what is left if it is small."""
    if response.isclosed() or response.length == 0:
        return True
    if response.length is None or response.length > _DRAIN_LIMIT:
        return False
    try:
        response.read()
    except (OSError, HTTPException):
        return False
    return response.isclosed()


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


def parse_json(
    text: str, url: str, hook: Callable[[list[tuple[str, Any]]], Any] | None = None
) -> Any:
    """*text* parsed as JSON (each object through *hook*, if given), or MalformedResponse."""
    try:
        return json.loads(text, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        near = text[max(exc.pos - 20, 0) : exc.pos + 20]
        raise MalformedResponse(
            url, f"bad JSON at line {exc.lineno} column {exc.colno} ({exc.msg}): {near!r}"
        ) from None
    except RecursionError:
        raise MalformedResponse(url, "JSON nested too deeply") from None


def header_serial(url: str, headers: Message) -> int | None:
    """The response's ``X-PyPI-Last-Serial``, None if it has none."""
    value = headers.get("X-PyPI-Last-Serial")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise MalformedResponse(url, f"X-PyPI-Last-Serial is {value!r}")
    return int(value)
