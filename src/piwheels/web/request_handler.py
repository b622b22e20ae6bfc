"""How the server answers one request: which file, or which error or redirect, and its headers.

Static files only, GET and HEAD. A directory is answered with its index file, negotiated by the
``Accept`` header in the simple index; a log is sent from its ``.gz``, compressed or not as the
client allows; a file goes whole, as a single byte range, or as 304 Not Modified, by the
request's conditional headers. A path that is not there gets status 404 and the output's
``404.html`` (as deploy/ has nginx and Apache send it), or a line of text before the master has
written that. Every request answered is reported to the server as a
:class:`LoggedRequest`, for tests to assert on.
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from piwheels.access_logs.lines import format_line
from piwheels.web.http_headers import (
    HTML_V1_TYPE,
    JSON_TYPE,
    PAGE_MAX_AGE,
    SIMPLE_TYPES,
    TEXT_HTML,
    UnsatisfiableRange,
    accepts_gzip,
    cache_control,
    content_type,
    negotiate,
    parse_range,
)
from piwheels.web.layout import NOT_FOUND_PAGE
from piwheels.web.request_paths import (
    BadRequest,
    Refused,
    names_project,
    path_segments,
    resolve_inside,
    split_target,
    url_path,
)

if TYPE_CHECKING:
    # Only for the annotation: the server module imports this one to build its server.
    from piwheels.web.server import OutputServer

# The server's logger, shared with piwheels.web.server: one name to set for all it says.
log = logging.getLogger("piwheels.web.server")

_SIMPLE_FILES = {TEXT_HTML: "index.html", HTML_V1_TYPE: "index.html", JSON_TYPE: "index.json"}
# The page is a few kB; anything much larger is not the page the Scribe wrote.
MAX_NOT_FOUND_PAGE = 256 * 1024


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
    client: str  # the client's address
    request_line: str  # as sent
    referrer: str | None
    finished: datetime  # aware

    def log_line(self) -> str:
        """The request as nginx's combined access log has it (without the newline)."""
        return format_line(
            self.client,
            self.finished,
            self.request_line,
            self.status,
            self.sent,
            self.referrer,
            self.user_agent,
        )


@dataclass(frozen=True)
class _Reply:
    """A file chosen to answer a request, and how to describe it."""

    path: Path
    segments: list[str]  # the request's path segments, for the cache lifetime
    media_type: str
    encoding: str | None = None  # "gzip" for logs sent from their .gz
    vary: str | None = None


class RequestHandler(BaseHTTPRequestHandler):
    """Answers the requests of one connection from its server's output directory."""

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
        self.server.begin_request()
        try:
            self._dispatch(send_body=send_body)
        except OSError as exc:
            # The client went away, or stop() shut the connection mid-file: nothing to answer.
            log.debug("%s %r from %s ended early: %s", self.command, self.path, self._peer(), exc)
            self.close_connection = True
        finally:
            self.server.end_request(
                LoggedRequest(
                    method=self.command,
                    path=self.path,
                    status=self._status,
                    accept=self.headers.get("Accept"),
                    range=self.headers.get("Range"),
                    user_agent=self.headers.get("User-Agent"),
                    sent=self._sent,
                    client=self.client_address[0],
                    request_line=self.requestline,
                    referrer=self.headers.get("Referer"),
                    finished=datetime.now(UTC),
                )
            )

    def _dispatch(self, *, send_body: bool) -> None:
        try:
            path, query = split_target(self.path)
            segments, trailing = path_segments(path)
        except BadRequest as exc:
            log.warning("refused %s %r from %s: %s", self.command, self.path, self._peer(), exc)
            self._plain(HTTPStatus.BAD_REQUEST, f"{exc}\n", send_body=send_body)
            return
        suffix = f"?{query}" if query else ""
        if names_project(segments, trailing):
            canonical = canonicalize_name(segments[1])
            if canonical != segments[1]:
                # PEP 503: a repository may send other spellings to the normalised URL.
                target = url_path([segments[0], canonical, *segments[2:]], trailing)
                self._redirect(target + suffix, send_body=send_body)
                return
        try:
            reply = self._choose(segments, trailing)
        except Refused as exc:
            log.warning("refused %s %r from %s: %s", self.command, self.path, self._peer(), exc)
            self._not_found(send_body=send_body)
            return
        if isinstance(reply, str):  # a redirect to the directory's URL
            self._redirect(reply + suffix, send_body=send_body)
        elif reply == HTTPStatus.NOT_ACCEPTABLE:
            body = f"not acceptable; this index offers {', '.join(SIMPLE_TYPES)}\n"
            self._plain(reply, body, send_body=send_body, vary="Accept")
        elif isinstance(reply, HTTPStatus):
            self._not_found(send_body=send_body)
        else:
            self._send_file(reply, send_body=send_body)

    def _choose(self, segments: list[str], trailing: bool) -> _Reply | HTTPStatus | str:
        """What answers the request: a file, an error status, or a URL to redirect to."""
        if any(segment.startswith(".") for segment in segments):
            # Hidden names are the writer's temporary files, never part of the output.
            return HTTPStatus.NOT_FOUND
        candidate = self.server.root.joinpath(*segments)
        real = resolve_inside(self.server.root, candidate)
        if real is None:
            if segments and segments[0] == "logs" and segments[-1].endswith(".txt"):
                return self._log_file(candidate, segments)
            return HTTPStatus.NOT_FOUND
        if real.is_dir():
            if not trailing and segments:
                return url_path(segments, trailing=True)
            return self._index(real, segments)
        if trailing or not real.is_file():
            return HTTPStatus.NOT_FOUND
        return _Reply(real, segments, content_type(segments[-1]))

    def _index(self, directory: Path, segments: list[str]) -> _Reply | HTTPStatus:
        """A directory's index file: negotiated in the simple index, else HTML before JSON."""
        if segments[:1] != ["simple"] or len(segments) > 2:
            for name in ("index.html", "index.json"):
                index = resolve_inside(self.server.root, directory / name)
                if index is not None and index.is_file():
                    return _Reply(index, segments, content_type(name))
            return HTTPStatus.NOT_FOUND
        media = negotiate(self.headers.get("Accept"))
        if media is None:
            return HTTPStatus.NOT_ACCEPTABLE
        index = resolve_inside(self.server.root, directory / _SIMPLE_FILES[media])
        if index is None or not index.is_file():
            return HTTPStatus.NOT_FOUND
        # PEP 691 types carry no charset parameter (UTF-8 is implied); text/html needs one.
        kind = f"{TEXT_HTML}; charset=utf-8" if media == TEXT_HTML else media
        return _Reply(index, segments, kind, vary="Accept")

    def _log_file(self, candidate: Path, segments: list[str]) -> _Reply | HTTPStatus:
        compressed = resolve_inside(self.server.root, candidate.with_name(candidate.name + ".gz"))
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
            self._not_found(send_body=send_body)
            return
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                self._not_found(send_body=send_body)
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
            if reply.encoding and not accepts_gzip(self.headers.get("Accept-Encoding")):
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
            extra={"Location": location, "Cache-Control": PAGE_MAX_AGE},
        )

    def _not_found(self, *, send_body: bool) -> None:
        """404, with the output's page for it when there is one."""
        body = self._not_found_page()
        if body is None:
            self._plain(HTTPStatus.NOT_FOUND, "not found\n", send_body=send_body)
            return
        self._status = HTTPStatus.NOT_FOUND
        self.send_response(HTTPStatus.NOT_FOUND)
        self.send_header("Content-Type", content_type(NOT_FOUND_PAGE))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
            self._sent = len(body)

    def _not_found_page(self) -> bytes | None:
        """The output's 404 page (a few kB, so read whole), or None if it has none."""
        page = resolve_inside(self.server.root, self.server.root / NOT_FOUND_PAGE)
        if page is None:
            return None
        try:
            # as _send_file opens files: no symlink, no waiting on a FIFO
            fd = os.open(page, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None
            body = file.read(MAX_NOT_FOUND_PAGE + 1)
        return body if 0 < len(body) <= MAX_NOT_FOUND_PAGE else None

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
