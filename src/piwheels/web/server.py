"""Serves an output directory over HTTP as deploy/nginx.conf does, for the demo farm and the tests.

Static files only, GET and HEAD, one thread per connection. What it adds to a plain file server is
what pip, uv and browsers rely on:

* ``/simple/`` and ``/simple/<name>/`` choose ``index.json`` or ``index.html`` by the ``Accept``
  header (PEP 691, q-values honoured, 406 when neither is acceptable) and say ``Vary: Accept``;
* an unnormalised project name (``/simple/Foo_Bar/``) redirects to the PEP 503 form;
* single byte ranges (uv reads a wheel's METADATA by range when no ``.metadata`` file exists);
* ``logs/.../<id>.txt`` is sent from ``<id>.txt.gz`` as gzip-encoded text;
* ETag / Last-Modified with conditional requests, and the cache lifetimes of deploy/.

Nothing outside the directory is ever served: ``..`` (plain or encoded), NUL bytes and symlinks
leading out are refused and logged. :func:`serve` starts a server in a thread;
:meth:`OutputServer.stop` closes the listening socket and every open connection, then joins the
threads. ``python -m piwheels.web.server DIRECTORY [--bind ADDRESS] [--port PORT]`` serves an
output directory by hand until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import gzip
import logging
import os
import re
import signal
import socket
import stat
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name

log = logging.getLogger("piwheels.web.server")
KEPT_REQUESTS = 10_000

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
#: The simple index's formats, in the order a tie goes: plain HTML first, as every client reads it.
SIMPLE_TYPES = (TEXT_HTML, HTML_V1_TYPE, JSON_TYPE)
_SIMPLE_FILES = {TEXT_HTML: "index.html", HTML_V1_TYPE: "index.html", JSON_TYPE: "index.json"}

# By file name ending, longest first. Wheels are opaque binaries to a browser; the .metadata files
# are the wheel's METADATA (RFC 822 style, UTF-8), which a person may want to read in the browser.
_TYPES = (
    (".whl.metadata", "text/plain; charset=utf-8"),
    (".whl", "application/octet-stream"),
    (".html", "text/html; charset=utf-8"),
    (".json", "application/json"),
    (".txt", "text/plain; charset=utf-8"),
    (".css", "text/css; charset=utf-8"),
    (".js", "text/javascript; charset=utf-8"),
    (".svg", "image/svg+xml"),
    (".png", "image/png"),
    (".ico", "image/vnd.microsoft.icon"),
    (".gz", "application/gzip"),
)

# Kept in step with the maps in deploy/nginx.conf and deploy/apache.conf.
_IMMUTABLE = "public, max-age=31536000, immutable"
_INDEX_MAX_AGE = "public, max-age=60"
_PAGE_MAX_AGE = "public, max-age=300"
_LOG_MAX_AGE = "public, max-age=86400"
_STATIC_MAX_AGE = "public, max-age=3600"

# A run of the characters PEP 503 folds into one "-".
_SEPARATORS = re.compile(r"[-_.]+")
_CHUNK = 256 * 1024


def negotiate(accept: str | None) -> str | None:
    """The simple-index format to send for an ``Accept`` header, or None if none is acceptable.

    Each format takes the quality of the most specific media range that matches it; the highest
    quality wins, then a format the client named over one a wildcard reached, then the client's
    earlier entry, then :data:`SIMPLE_TYPES` order. No header at all means ``*/*``.

    >>> negotiate("application/vnd.pypi.simple.v1+json, text/html;q=0.01")
    'application/vnd.pypi.simple.v1+json'
    >>> negotiate("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.9")
    'application/vnd.pypi.simple.v1+json'
    >>> negotiate("*/*") == negotiate(None) == 'text/html'
    True
    >>> negotiate("application/json") is None
    True
    """
    ranges = _parse_accept(accept if accept and accept.strip() else "*/*")
    best: tuple[float, int, int, int] | None = None
    chosen = None
    for rank, offer in enumerate(SIMPLE_TYPES):
        kind = offer.split("/")[0]
        # (specificity, -position, quality) of the most specific range matching this offer.
        match: tuple[int, int, float] | None = None
        for position, (media, quality) in enumerate(ranges):
            if media == offer:
                specificity = 2
            elif media == f"{kind}/*":
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if match is None or specificity > match[0]:
                match = (specificity, -position, quality)
        if match is None or match[2] <= 0:
            continue
        key = (match[2], match[0], match[1], -rank)
        if best is None or key > best:
            best, chosen = key, offer
    return chosen


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    """(media range lowercased, quality) per entry; entries with a malformed q are dropped."""
    ranges = []
    for entry in accept.split(","):
        media, *params = (part.strip() for part in entry.split(";"))
        if "/" not in media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = -1.0
        if 0 <= quality <= 1:
            ranges.append((media.lower(), quality))
    return ranges


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The (first, last) byte positions of a single-range ``Range`` header for *size* bytes.

    Raises :class:`UnsatisfiableRange` when the range lies past the end. Returns None for a header
    to ignore (not bytes, malformed, or several ranges: RFC 9110 lets a server send the whole
    representation instead, and no installer asks for more than one range).

    >>> parse_range("bytes=0-99", 1000), parse_range("bytes=900-", 1000)
    ((0, 99), (900, 999))
    >>> parse_range("bytes=-100", 1000), parse_range("bytes=0-9999", 1000)
    ((900, 999), (0, 999))
    >>> parse_range("bytes=0-1,5-6", 1000) is None
    True
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash or not (first_text + last_text).isdigit() or not (first_text or last_text):
        return None
    if not first_text:  # a suffix: the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise UnsatisfiableRange(header)
        return max(0, size - length), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid, so ignored (RFC 9110 14.1.1)
    if first >= size:
        raise UnsatisfiableRange(header)
    return first, min(int(last_text), size - 1) if last_text else size - 1


class UnsatisfiableRange(ValueError):
    """A Range header whose range starts past the end of the file."""

    def __init__(self, header: str) -> None:
        super().__init__(f"unsatisfiable range {header!r}")


class BadRequest(ValueError):
    """A request target that cannot name a file in the output directory (quoted in the message)."""


class Refused(ValueError):
    """A path that would leave the output directory; answered 404 and logged."""


def content_type(name: str) -> str:
    """The Content-Type of a file in the output directory, by its name."""
    lowered = name.lower()
    for ending, media in _TYPES:
        if lowered.endswith(ending):
            return media
    return "application/octet-stream"


def cache_control(segments: list[str]) -> str:
    """How long clients and proxies may keep a file, by where it lives.

    Wheels and their metadata never change under one name (a rebuild that changes a wheel must
    give it a new name, or caches will hand out a file whose hash no longer matches the index);
    the index pages change with every build, so they are kept briefly.
    """
    name = segments[-1] if segments else ""
    if name.endswith((".whl", ".whl.metadata")):
        return _IMMUTABLE
    top = segments[0] if segments else ""
    if top == "simple":
        return _INDEX_MAX_AGE
    if top == "logs":
        return _LOG_MAX_AGE
    if top == "static":
        return _STATIC_MAX_AGE
    return _PAGE_MAX_AGE


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server answered, for tests to assert on."""

    method: str
    path: str  # as sent, with the query string
    status: int
    accept: str | None
    range: str | None
    user_agent: str | None
    sent: int  # body bytes written


@dataclass(frozen=True)
class _Reply:
    """A file chosen to answer a request, and how to describe it."""

    path: Path
    segments: list[str]  # the request's path segments, for the cache lifetime
    media_type: str
    encoding: str | None = None  # "gzip" for logs sent from their .gz
    vary: str | None = None


class OutputServer(ThreadingHTTPServer):
    """A threaded HTTP server over one output directory; see :func:`serve`."""

    # Handler threads are joined by server_close() after stop() has closed their connections, so
    # a stopped server leaves nothing running.
    daemon_threads = False
    block_on_close = True

    def __init__(self, directory: Path, address: tuple[str, int]) -> None:
        self.root = Path(os.path.realpath(directory))
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a directory: {str(directory)!r}")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        # the latest requests, for tests and their failures: bounded, for a server left running
        self._requests: deque[LoggedRequest] = deque(maxlen=KEPT_REQUESTS)
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The server's root, without a trailing slash: ``http://127.0.0.1:PORT``."""
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self, timeout: float = 5.0) -> None:
        """Forget the requests logged so far, once those being answered have finished."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
            self._requests.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered; False if that took longer than *timeout*.

        A client may have read a whole response before its handler has logged it, so a test
        that asserts on :attr:`requests` after a client exits calls this first.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def start(self) -> Self:
        """Serve from a thread of this process; :meth:`stop` ends it."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                # stop() waits up to one interval for the loop to notice.
                kwargs={"poll_interval": 0.1},
                name=f"web-server-{self.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection (idle keep-alives too) and join all threads."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # shutdown() rather than close(): the handler thread still owns the descriptor; this
            # wakes it from a blocking read or write so that it finishes by itself.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ThreadingHTTPServer hooks: track live connections so that stop() can close them.

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._requests.append(entry)
            self._in_flight -= 1
            self._idle.notify_all()


def serve(directory: Path, host: str = "127.0.0.1", port: int = 0) -> OutputServer:
    """Serve *directory* on *host*:*port* (0: any free port) from a background thread.

    Returns the running server; its ``url`` says where, and ``stop()`` (or leaving a ``with``
    block) shuts it down cleanly.
    """
    return OutputServer(directory, (host, port)).start()


class _Handler(BaseHTTPRequestHandler):
    server: OutputServer
    server_version = "piwheels"
    # Keep-alive: uv and pip make many small requests to one host.
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is closed after this long, so it cannot pin a thread.
    timeout = 30

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        self._sent = 0
        self._status = 500
        self.server._begin()
        try:
            self._dispatch(send_body=send_body)
        except OSError as exc:
            # The client went away, or stop() shut the connection mid-file: nothing to answer.
            log.debug("%s %r from %s ended early: %s", self.command, self.path, self._peer(), exc)
            self.close_connection = True
        finally:
            self.server._end(
                LoggedRequest(
                    method=self.command,
                    path=self.path,
                    status=self._status,
                    accept=self.headers.get("Accept"),
                    range=self.headers.get("Range"),
                    user_agent=self.headers.get("User-Agent"),
                    sent=self._sent,
                )
            )

    def _dispatch(self, *, send_body: bool) -> None:
        try:
            path, query = _split_target(self.path)
            segments, trailing = _segments(path)
        except BadRequest as exc:
            log.warning("refused %s %r from %s: %s", self.command, self.path, self._peer(), exc)
            self._plain(HTTPStatus.BAD_REQUEST, f"{exc}\n", send_body=send_body)
            return
        suffix = f"?{query}" if query else ""
        if _names_project(segments, trailing):
            canonical = canonicalize_name(segments[1])
            if canonical != segments[1]:
                # PEP 503: a repository may send other spellings to the normalised URL.
                target = _url_path([segments[0], canonical, *segments[2:]], trailing)
                self._redirect(target + suffix, send_body=send_body)
                return
        try:
            reply = self._choose(segments, trailing)
        except Refused as exc:
            log.warning("refused %s %r from %s: %s", self.command, self.path, self._peer(), exc)
            self._plain(HTTPStatus.NOT_FOUND, "not found\n", send_body=send_body)
            return
        if isinstance(reply, str):  # a redirect to the directory's URL
            self._redirect(reply + suffix, send_body=send_body)
        elif isinstance(reply, HTTPStatus):
            body = "not found\n"
            vary = None
            if reply == HTTPStatus.NOT_ACCEPTABLE:
                body = f"not acceptable; this index offers {', '.join(SIMPLE_TYPES)}\n"
                vary = "Accept"
            self._plain(reply, body, send_body=send_body, vary=vary)
        else:
            self._send_file(reply, send_body=send_body)

    def _choose(self, segments: list[str], trailing: bool) -> _Reply | HTTPStatus | str:
        """What answers the request: a file, an error status, or a URL to redirect to."""
        if any(segment.startswith(".") for segment in segments):
            # Hidden names are the writer's temporary files, never part of the output.
            return HTTPStatus.NOT_FOUND
        candidate = self.server.root.joinpath(*segments)
        real = _inside(self.server.root, candidate)
        if real is None:
            if segments and segments[0] == "logs" and segments[-1].endswith(".txt"):
                return self._log_file(candidate, segments)
            return HTTPStatus.NOT_FOUND
        if real.is_dir():
            if not trailing and segments:
                return _url_path(segments, trailing=True)
            return self._index(real, segments)
        if trailing or not real.is_file():
            return HTTPStatus.NOT_FOUND
        return _Reply(real, segments, content_type(segments[-1]))

    def _index(self, directory: Path, segments: list[str]) -> _Reply | HTTPStatus:
        """A directory's index file: negotiated in the simple index, else HTML before JSON."""
        if segments[:1] != ["simple"] or len(segments) > 2:
            for name in ("index.html", "index.json"):
                index = _inside(self.server.root, directory / name)
                if index is not None and index.is_file():
                    return _Reply(index, segments, content_type(name))
            return HTTPStatus.NOT_FOUND
        media = negotiate(self.headers.get("Accept"))
        if media is None:
            return HTTPStatus.NOT_ACCEPTABLE
        index = _inside(self.server.root, directory / _SIMPLE_FILES[media])
        if index is None or not index.is_file():
            return HTTPStatus.NOT_FOUND
        # PEP 691 types carry no charset parameter (UTF-8 is implied); text/html needs one.
        kind = f"{TEXT_HTML}; charset=utf-8" if media == TEXT_HTML else media
        return _Reply(index, segments, kind, vary="Accept")

    def _log_file(self, candidate: Path, segments: list[str]) -> _Reply | HTTPStatus:
        compressed = _inside(self.server.root, candidate.with_name(candidate.name + ".gz"))
        if compressed is None or not compressed.is_file():
            return HTTPStatus.NOT_FOUND
        return _Reply(
            compressed, segments, content_type(candidate.name), "gzip", vary="Accept-Encoding"
        )

    def _send_file(self, reply: _Reply, *, send_body: bool) -> None:
        try:
            # O_NONBLOCK: opening a FIFO someone left in the tree must not hang the thread.
            fd = os.open(reply.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            log.warning("cannot open %s for %r: %s", reply.path, self.path, exc)
            self._plain(HTTPStatus.NOT_FOUND, "not found\n", send_body=send_body)
            return
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                self._plain(HTTPStatus.NOT_FOUND, "not found\n", send_body=send_body)
                return
            size = info.st_size
            etag = f'"{info.st_ino:x}-{info.st_mtime_ns:x}-{size:x}"'
            modified = email.utils.formatdate(info.st_mtime, usegmt=True)
            headers = {
                "Content-Type": reply.media_type,
                "ETag": etag,
                "Last-Modified": modified,
                "Cache-Control": cache_control(reply.segments),
                "Accept-Ranges": "bytes",
            }
            if reply.vary:
                headers["Vary"] = reply.vary
            if reply.encoding and not _accepts_gzip(self.headers.get("Accept-Encoding")):
                # A client that cannot take gzip (curl without --compressed, say) gets the text.
                del headers["Accept-Ranges"]
                self._send_decompressed(file, headers, send_body=send_body)
                return
            if reply.encoding:
                headers["Content-Encoding"] = reply.encoding
            self._send_representation(file, size, headers, send_body=send_body)

    def _send_representation(
        self, file: IO[bytes], size: int, headers: dict[str, str], *, send_body: bool
    ) -> None:
        """Send *file* as 304, 416, 206 or 200, by the request's conditional and Range headers."""
        etag, modified = headers["ETag"], headers["Last-Modified"]
        if self._not_modified(etag, modified):
            self._status = HTTPStatus.NOT_MODIFIED
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for name in ("ETag", "Last-Modified", "Cache-Control", "Vary"):
                if name in headers:
                    self.send_header(name, headers[name])
            self.end_headers()
            return
        first, last = 0, size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header and self._range_applies(etag, modified):
            try:
                chosen = parse_range(range_header, size)
            except UnsatisfiableRange:
                self._plain(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    "range not satisfiable\n",
                    send_body=send_body,
                    extra={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
                )
                return
            if chosen is not None:
                first, last = chosen
                status = HTTPStatus.PARTIAL_CONTENT
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        length = last - first + 1
        self._status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if send_body and length > 0:
            # end_headers() has flushed the headers; the kernel copies the file from here.
            self._sent = self.connection.sendfile(file, first, length)

    def _send_decompressed(
        self, file: IO[bytes], headers: dict[str, str], *, send_body: bool
    ) -> None:
        # Logs are small (a build's output); reading the text whole gives a Content-Length,
        # which keep-alive needs.
        try:
            body = gzip.decompress(file.read())
        except (OSError, EOFError) as exc:
            log.warning("corrupt log %r: %s", self.path, exc)
            self._plain(HTTPStatus.INTERNAL_SERVER_ERROR, "corrupt log\n", send_body=send_body)
            return
        del headers["ETag"]  # a different representation from the gzip one
        self._status = HTTPStatus.OK
        self.send_response(HTTPStatus.OK)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
            self._sent = len(body)

    def _not_modified(self, etag: str, modified: str) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or etag in tags
        since = self.headers.get("If-Modified-Since")
        if since:
            try:
                moment = email.utils.parsedate_to_datetime(since)
            except (TypeError, ValueError):
                return False
            return email.utils.parsedate_to_datetime(modified) <= moment
        return False

    def _range_applies(self, etag: str, modified: str) -> bool:
        # If-Range: the client has part of a file and wants the rest only if it has not changed.
        if_range = self.headers.get("If-Range")
        return if_range is None or if_range.strip() in {etag, modified}

    def _redirect(self, location: str, *, send_body: bool) -> None:
        self._plain(
            HTTPStatus.MOVED_PERMANENTLY,
            f"moved to {location}\n",
            send_body=send_body,
            extra={"Location": location, "Cache-Control": _PAGE_MAX_AGE},
        )

    def _plain(
        self,
        status: HTTPStatus,
        text: str,
        *,
        send_body: bool,
        vary: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        body = text.encode()
        self._status = status
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if vary:
            self.send_header("Vary", vary)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)
            self._sent = len(body)

    def _peer(self) -> str:
        return str(self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self._peer(), format % args)


def _split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target, which must be origin-form or absolute-form."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    if not target.startswith("/"):
        raise BadRequest(f"not a path: {target!r}")
    # Not urlsplit: it would read "//host/x" as a network location.
    path, _, query = target.partition("#")[0].partition("?")
    return path, query


def _segments(path: str) -> tuple[list[str], bool]:
    """The decoded, non-empty segments of *path*, and whether it ends with a slash.

    Refuses what a browser never sends and an attacker does: "." and ".." (also encoded), NUL,
    and bytes that are not UTF-8. Decoding comes first, so "%2e%2e%2f" is caught as "../".
    """
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"path is not UTF-8: {path!r}") from None
    if "\x00" in decoded:
        raise BadRequest(f"NUL in path: {path!r}")
    segments = [segment for segment in decoded.split("/") if segment]
    if any(segment in {".", ".."} for segment in segments):
        raise BadRequest(f"dot segment in path: {path!r}")
    return segments, decoded.endswith("/")


def _names_project(segments: list[str], trailing: bool) -> bool:
    """Whether the second segment is a project name (not one of the index root's own files)."""
    if len(segments) < 2 or segments[0] not in {"simple", "project"}:
        return False
    return len(segments) > 2 or trailing or segments[1] not in {"index.html", "index.json"}


def _inside(root: Path, candidate: Path) -> Path | None:
    """*candidate* with symlinks resolved, if it exists; Refused if that is outside *root*."""
    try:
        real = Path(os.path.realpath(candidate, strict=True))
    except (OSError, ValueError):
        return None
    if real != root and not real.is_relative_to(root):
        raise Refused(f"{str(candidate)!r} leads to {str(real)!r}, outside {str(root)!r}")
    return real


def _url_path(segments: list[str], trailing: bool) -> str:
    path = "/" + "/".join(quote(segment) for segment in segments)
    return path + "/" if trailing and segments else path


def _accepts_gzip(accept_encoding: str | None) -> bool:
    # No header is taken as "identity only", as nginx's gunzip does: curl without --compressed
    # sends none and its user wants to read the text.
    for entry in (accept_encoding or "").split(","):
        coding, *params = (part.strip().lower() for part in entry.split(";"))
        if coding in {"gzip", "x-gzip", "*"}:
            qualities = [p.partition("=")[2] for p in params if p.replace(" ", "").startswith("q=")]
            try:
                return not qualities or float(qualities[0]) > 0
            except ValueError:
                return False
    return False


def main(argv: list[str] | None = None) -> int:
    """Serve an output directory until Ctrl-C or SIGTERM, logging each request."""
    parser = argparse.ArgumentParser(
        prog="python -m piwheels.web.server",
        description="Serve a piwheels output directory (piw-master's --output-path) over HTTP, "
        "as deploy/nginx.conf does: PEP 691 content negotiation, byte ranges, gzipped logs.",
    )
    parser.add_argument("directory", type=Path, help="the output directory to serve")
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address to listen on (default: %(default)s; 0.0.0.0 or :: for every one)",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="the port to listen on (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)-7s %(message)s")
    try:
        server = OutputServer(args.directory, (args.bind, args.port))
    except OSError as exc:
        log.error("cannot serve %s on %s port %d: %s", args.directory, args.bind, args.port, exc)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        log.info("serving %s on %s/ (Ctrl-C to stop)", server.root, server.url)
        while not stop.wait(1.0):
            pass
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
