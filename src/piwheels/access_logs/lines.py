"""One line of a web server's access log in the "combined" format, as Apache and nginx write it,
turned into its fields, and written (for the demo farm's own server, as nginx would).

Apache's format is ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"``; nginx's
``combined`` is the same with ``$remote_addr``, ``$time_local`` and so on. Fields a site appends
after the user agent (request time, upstream time) are accepted and ignored.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit


class BadLine(ValueError):
    """A line that is not in the combined format; the message quotes its start."""


@dataclass(frozen=True, slots=True)
class AccessLine:
    host: str
    time: datetime  # aware, in UTC
    method: str  # "" when the request line was not "METHOD TARGET PROTOCOL"
    path: str  # percent-decoded; "" as for method
    query: str  # raw, without the "?"
    status: int
    size: int
    referrer: str | None
    user_agent: str | None


# Quoted fields: nginx writes `"` and `\` (and every byte outside printable ASCII) as \xHH, so
# its quoted fields never hold a quote and the first one ends the field; _FAST reads them so.
# Apache writes `"` and `\` as `\"` and `\\`, which _EXACT reads, possessively so that a broken
# line fails in one pass. A line _FAST takes is one _EXACT would take the same way unless a field
# ends in a backslash (the quote after it may be an escaped one), so those go to _EXACT too.
# The head (host, identity and user, both ignored, and time) is atomic: the first `] "` ends the
# time, as neither server lets a quote into the user, and a line _FAST fails is then failed without
# trying every later " [" in the line as the time's start.
_HEAD = r'(?>(\S+) \S+ (.*?) \[([^\]]*)\] ")'
# status, and size: 18 digits are an exabyte, and keep it a PostgreSQL bigint
_NUMBERS = r" (\d{3}) (\d{1,18}|-) "
_TAIL = r"(?:\s.*)?"  # extra fields some sites append
_FAST = re.compile(_HEAD + '([^"]*)"' + _NUMBERS + '"([^"]*)" "([^"]*)"' + _TAIL, re.ASCII)
_QUOTED = r'((?>[^"\\]*+(?:\\.[^"\\]*+)*+))"'
_EXACT = re.compile(_HEAD + _QUOTED + _NUMBERS + '"' + _QUOTED + ' "' + _QUOTED + _TAIL, re.ASCII)

# Apache's escapes are \xhh plus a backslash before `"`, `\` and the letters of C's control
# escapes; nginx's are \xHH only. Python's own unicode_escape codec reads all of these (in C, ten
# times faster than a substitution), but also others (\N{...}, \u, octal), so it is given only
# fields without an escape _ODD finds; those take the slow way, where `\c` is read as `c`.
_ODD = re.compile(rb'\\(?!x[0-9a-fA-F]{2}|[\\"bnrtvf])')
_ESCAPE = re.compile(rb"\\(?:x([0-9a-fA-F]{2})|(.))", re.DOTALL)
_LETTERS = {
    b"b": b"\b",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"v": b"\v",
    b"f": b"\f",
}

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}

_QUOTE_BAD = 80  # how much of a bad line its error quotes


def _unescape_match(match: re.Match[bytes]) -> bytes:
    code, other = match.groups()
    if code is not None:
        return bytes((int(code, 16),))
    return _LETTERS.get(other, other)


def unescape(field: str) -> str:
    """A quoted field as the client sent it: the server's escapes undone, the bytes read as
    UTF-8 (bytes that are not become U+FFFD).

    >>> unescape(r"odd \\x22quoted\\x22 B\\xC3\\xBCcher")
    'odd "quoted" Bücher'
    """
    if field.isascii() and "\\" not in field:
        return field
    try:
        # a line read as UTF-8 with errors="surrogateescape" gets its own bytes back
        raw = field.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = field.encode("utf-8", "surrogatepass")
    if _ODD.search(raw) is None:
        # each escape becomes one code point below 256, as does each other byte: latin-1 then
        # gives back the bytes
        raw = raw.decode("unicode_escape").encode("latin-1")
    else:
        raw = _ESCAPE.sub(_unescape_match, raw)
    return raw.decode("utf-8", "replace")


@functools.lru_cache(maxsize=1024)
def _offset(text: str) -> timezone:
    if text[0] not in "+-" or not text[1:].isdigit() or not text.isascii():
        raise ValueError(text)
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


# A busy log repeats each second's time string on many consecutive lines, so most look-ups hit.
@functools.lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime:
    """The time of a log line (``07/Dec/2026:16:37:39 +0530``), in UTC.

    Sliced by position rather than with strptime, which costs several times more.

    >>> parse_time("07/Dec/2026:16:37:39 +0530")
    datetime.datetime(2026, 12, 7, 11, 7, 39, tzinfo=datetime.timezone.utc)
    """
    if (
        len(text) != 26
        or text[2] != "/"
        or text[6] != "/"
        or text[11] != ":"
        or text[14] != ":"
        or text[17] != ":"
        or text[20] != " "
        or not text.isascii()
        or not (text[:2] + text[7:11] + text[12:14] + text[15:17] + text[18:20]).isdigit()
    ):
        raise ValueError(text)
    local = datetime(
        int(text[7:11]),
        _MONTHS[text[3:6]],
        int(text[:2]),
        int(text[12:14]),
        int(text[15:17]),
        int(text[18:20]),
        tzinfo=_offset(text[21:]),
    )
    return local.astimezone(UTC)


def _request(field: str) -> tuple[str, str, str]:
    """The method, decoded path and raw query of a quoted request line, or three empty strings
    when it is not "METHOD TARGET PROTOCOL"."""
    parts = unescape(field).split(" ")
    if len(parts) != 3 or not parts[0] or not parts[2].startswith("HTTP/"):
        return "", "", ""
    method, target, _ = parts
    if not target.startswith("/"):
        # absolute form (GET http://host/path HTTP/1.1), which servers accept too
        try:
            split = urlsplit(target)
        except ValueError:
            return "", "", ""
        if not split.scheme or not split.netloc:
            return "", "", ""
        return method, unquote(split.path), split.query
    path, _, query = target.partition("?")
    return method, unquote(path), query


# The same agents (every pip of a version on a platform sends one string) and requests (a
# popular wheel, a project's index) come back all day. Only fields of a sensible length are
# kept, so that hostile ones cannot fill memory.
CACHED = 2048  # characters
_cached_unescape = functools.lru_cache(maxsize=4096)(unescape)
_cached_request = functools.lru_cache(maxsize=4096)(_request)


def _optional(field: str) -> str | None:
    if field == "-":
        return None
    return _cached_unescape(field) if len(field) <= CACHED else unescape(field)


def _fields(line: str) -> tuple[str, ...]:
    match = _FAST.fullmatch(line)
    if match is not None:
        fields = match.groups()
        if not (fields[3].endswith("\\") or fields[6].endswith("\\") or fields[7].endswith("\\")):
            return fields
    match = _EXACT.fullmatch(line)
    if match is None:
        raise BadLine(f"not a combined log line: {line[:_QUOTE_BAD]!r}")
    return match.groups()


def parse_line(line: str) -> AccessLine:
    """The fields of one access log line (without its newline).

    Raises BadLine when the line's structure is not the combined format: a field missing,
    a bad time, a status that is not three digits.
    """
    host, _, when, request, status, size, referrer, agent = _fields(line)
    try:
        time = parse_time(when)
    except (ValueError, KeyError, OverflowError):
        raise BadLine(f"bad time {when[:_QUOTE_BAD]!r}") from None
    method, path, query = (_cached_request if len(request) <= CACHED else _request)(request)
    return AccessLine(
        host,
        time,
        method,
        path,
        query,
        int(status),
        0 if size == "-" else int(size),
        _optional(referrer),
        _optional(agent),
    )


_MONTH_NAMES = {number: name for name, number in _MONTHS.items()}
# nginx's escaping of a quoted field: a quote, a backslash and every byte outside printable
# ASCII as \xHH, so that a field never holds a quote
_NGINX_ESCAPES = {
    byte: f"\\x{byte:02X}" if byte < 0x20 or byte >= 0x7F or chr(byte) in '"\\' else chr(byte)
    for byte in range(256)
}


def _escaped(field: str | None) -> str:
    if field is None:
        return "-"
    try:
        # http.server reads a request's line and headers as latin-1: this gives their bytes back
        raw = field.encode("latin-1")
    except UnicodeEncodeError:
        raw = field.encode("utf-8", "replace")
    return "".join(_NGINX_ESCAPES[byte] for byte in raw)


def format_line(
    host: str,
    time: datetime,
    request: str,
    status: int,
    size: int,
    referrer: str | None,
    user_agent: str | None,
) -> str:
    """One line of the combined format as nginx writes it (without its newline): what
    :func:`parse_line` reads back. *time* must be aware.

    >>> format_line("192.0.2.1", datetime(2026, 12, 7, 10, 0, tzinfo=UTC), "GET / HTTP/1.1",
    ...             200, 512, None, "pip/26.3")
    '192.0.2.1 - - [07/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "pip/26.3"'
    """
    stamp = f"{time:%d}/{_MONTH_NAMES[time.month]}/{time:%Y:%H:%M:%S %z}"  # %b is the locale's
    return (
        f'{host} - - [{stamp}] "{_escaped(request)}" {status} {size} '
        f'"{_escaped(referrer)}" "{_escaped(user_agent)}"'
    )
