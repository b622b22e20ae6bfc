"""``sitemap.xml``: every page a search engine should know of, as the sitemaps.org protocol says.

A sitemap file may list at most 50,000 URLs and 50 MB (uncompressed); past either, the protocol
wants a sitemap index naming several sitemap files. PyPI has some 600,000 projects, so at its
scale ``sitemap.xml`` is an index of ``sitemap-1.xml`` ... ``sitemap-12.xml``, and on a small farm
it is the one list. The entries are written as they come, one file of at most the limits at a
time, so the whole list is never held in memory, and by a real XML writer: project names come
from PyPI.

Each file is written atomically, the numbered files before the index that names them, and
numbered files no index names any more (the farm had more projects once, or the limits were
lower) are deleted last. :mod:`piwheels.web.bulk` runs this in a child process of the master.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl

from piwheels.web.writer import write_atomic

NAMESPACE = "http://www.sitemaps.org/schemas/sitemap/0.9"
MAX_URLS = 50_000  # per sitemap file, and sitemap files per index
MAX_BYTES = 50 * 1024 * 1024  # per file, uncompressed (52,428,800 bytes)
SITEMAP = "sitemap.xml"
ROBOTS = "robots.txt"
# The site's own pages, listed first: the home page, search and the FAQ.
SITE_PAGES = ("/", "/search/", "/faq/")
_NUMBERED = re.compile(r"sitemap-([1-9][0-9]*)\.xml")
# What RFC 3986 allows unencoded in a path segment; anything else is %-encoded (UTF-8), so that
# every <loc> is a URL and all in ASCII.
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"
_URL_SAFE = _SEGMENT_SAFE + "/?#[]%"
_PLAIN_NAME = re.compile(r"[a-z0-9-]+")  # canonical names, nearly all: nothing to encode
_NONE: AttributesImpl[str] = AttributesImpl({})
_ROOT: AttributesImpl[str] = AttributesImpl({"xmlns": NAMESPACE})


class Page(NamedTuple):
    """A page to list: its root-relative path, and when it last changed (if the data says)."""

    path: str
    lastmod: datetime | None = None


def project_pages(projects: Iterable[tuple[str, datetime | None]]) -> Iterator[Page]:
    """The site's own pages, then ``/project/<name>/`` for each of *projects* (name, lastmod)."""
    for path in SITE_PAGES:
        yield Page(path)
    for name, lastmod in projects:
        segment = (
            name
            if _PLAIN_NAME.fullmatch(name)
            else quote(name, safe=_SEGMENT_SAFE, errors="replace")
        )
        yield Page(f"/project/{segment}/", lastmod)


def write_sitemap(
    output: Path,
    base_url: str,
    pages: Iterable[Page],
    *,
    max_urls: int = MAX_URLS,
    max_bytes: int = MAX_BYTES,
) -> int:
    """Write ``sitemap.xml`` under *output* listing *pages* at *base_url* (the site's public
    URL: the protocol wants absolute URLs); split past *max_urls* or *max_bytes* a file.
    Returns how many URLs it lists."""
    base = quote(base_url.rstrip("/"), safe=_URL_SAFE, errors="replace")
    written: list[tuple[str, datetime | None]] = []  # numbered files: (name, newest lastmod)
    listing = _Urlset(max_urls, max_bytes)
    count = 0
    for page in pages:
        if not listing.add(base + page.path, page.lastmod):
            written.append(_write_numbered(output, len(written) + 1, listing))
            listing = _Urlset(max_urls, max_bytes)
            listing.add(base + page.path, page.lastmod)
        count += 1
    if written:
        written.append(_write_numbered(output, len(written) + 1, listing))
        if len(written) > MAX_URLS:
            raise ValueError(f"{count:,} pages need {len(written):,} sitemaps, past the limit")
        write_atomic(output / SITEMAP, _index(base, written))
    else:
        write_atomic(output / SITEMAP, listing.finish())
    _delete_unlisted(output, len(written))
    # where crawlers look for the sitemap without being told (sitemaps.org, "Informing search
    # engine crawlers"); every page may be crawled
    robots = f"User-agent: *\nAllow: /\n\nSitemap: {base}/{SITEMAP}\n"
    write_atomic(output / ROBOTS, robots.encode("ascii"))
    return count


class _Urlset:
    """One ``<urlset>`` being written, that knows when it is full."""

    def __init__(self, max_urls: int, max_bytes: int) -> None:
        self.max_urls = max_urls
        self.max_bytes = max_bytes
        # Text, not bytes: the writer then writes straight into it (no buffer between), so
        # tell() is exact, and every character is ASCII (the URLs are %-encoded), one byte.
        self.text = io.StringIO()
        self.xml = XMLGenerator(self.text, "utf-8", short_empty_elements=True)
        self.xml.startDocument()
        self.xml.startElement("urlset", _ROOT)
        self.count = 0
        self.newest: datetime | None = None

    def add(self, url: str, lastmod: datetime | None) -> bool:
        """Add a ``<url>``; False (and nothing added) if it would take the file past a limit.
        The first always goes in, whatever its size: it could go in no other file."""
        if self.count >= self.max_urls:
            return False
        when = _utc(lastmod) if lastmod is not None else None
        start = self.text.tell()
        self.xml.startElement("url", _NONE)
        _leaf(self.xml, "loc", url)
        if when is not None:
            _leaf(self.xml, "lastmod", when.isoformat(timespec="seconds"))
        self.xml.endElement("url")
        if self.count and self.text.tell() + len(_URLSET_END) > self.max_bytes:
            self.text.seek(start)
            self.text.truncate()
            return False
        self.count += 1
        if when is not None and (self.newest is None or when > self.newest):
            self.newest = when
        return True

    def finish(self) -> bytes:
        self.xml.endElement("urlset")
        self.xml.endDocument()
        return (self.text.getvalue() + "\n").encode("utf-8")


_URLSET_END = "</urlset>\n"


def _write_numbered(output: Path, number: int, listing: _Urlset) -> tuple[str, datetime | None]:
    name = f"sitemap-{number}.xml"
    write_atomic(output / name, listing.finish())
    return name, listing.newest


def _index(base: str, sitemaps: list[tuple[str, datetime | None]]) -> bytes:
    """The ``<sitemapindex>`` naming *sitemaps*, each with the newest lastmod it lists."""
    text = io.StringIO()
    xml = XMLGenerator(text, "utf-8", short_empty_elements=True)
    xml.startDocument()
    xml.startElement("sitemapindex", _ROOT)
    for name, newest in sitemaps:
        xml.startElement("sitemap", _NONE)
        _leaf(xml, "loc", f"{base}/{name}")
        if newest is not None:
            _leaf(xml, "lastmod", newest.isoformat(timespec="seconds"))
        xml.endElement("sitemap")
    xml.endElement("sitemapindex")
    xml.endDocument()
    return (text.getvalue() + "\n").encode("utf-8")


def _leaf(xml: XMLGenerator, name: str, text: str) -> None:
    """``<name>text</name>``, the text escaped by the writer."""
    xml.startElement(name, _NONE)
    xml.characters(text)
    xml.endElement(name)


def _delete_unlisted(output: Path, listed: int) -> None:
    """Delete the numbered sitemaps past the *listed* first: no index names them now."""
    for path in output.glob("sitemap-*.xml"):
        found = _NUMBERED.fullmatch(path.name)
        if found and int(found.group(1)) > listed:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _utc(when: datetime) -> datetime:
    """*when* in UTC (a W3C datetime once formatted); a naive time is taken as UTC already."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)
