"""The server's HTTP rules, one function per header, with no sockets or files involved.

Which simple-index format an ``Accept`` header asks for (PEP 691), which bytes a ``Range`` header
wants, whether ``Accept-Encoding`` allows gzip, and what a file's ``Content-Type`` and
``Cache-Control`` are. They mirror deploy/nginx.conf and deploy/apache.conf, so that what the
tests prove against the demo server holds for a real deployment too.
"""

from __future__ import annotations

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_V1_TYPE = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
#: The simple index's formats, in the order a tie goes: plain HTML first, as every client reads it.
SIMPLE_TYPES = (TEXT_HTML, HTML_V1_TYPE, JSON_TYPE)

# By file name ending, longest first. Wheels are opaque binaries to a browser; the .metadata files
# are the wheel's METADATA (RFC 822 style, UTF-8), which a person may want to read in the browser.
_TYPES = (
    (".whl.metadata", "text/plain; charset=utf-8"),
    (".whl", "application/octet-stream"),
    (".html", "text/html; charset=utf-8"),
    (".json", "application/json"),
    (".xml", "application/xml"),  # the sitemap
    (".txt", "text/plain; charset=utf-8"),
    (".pem", "text/plain; charset=utf-8"),  # the key that signs the wheels' provenance
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
PAGE_MAX_AGE = "public, max-age=300"
_LOG_MAX_AGE = "public, max-age=86400"
_STATIC_MAX_AGE = "public, max-age=3600"


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
    return PAGE_MAX_AGE


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a client sending this ``Accept-Encoding`` header can take a gzipped body."""
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
