"""sitemap.xml as the sitemaps.org protocol has it: absolute URLs, W3C times, valid XML whatever
the project names, and an index of numbered sitemaps past the limits (small limits here: the
real ones are checked as constants)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from piwheels.web.sitemap import MAX_BYTES, MAX_URLS, NAMESPACE, Page, project_pages, write_sitemap

BASE = "https://piwheels.example"
NS = {"s": NAMESPACE}
WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SITE = [f"{BASE}/", f"{BASE}/search/", f"{BASE}/faq/"]


def parse(path: Path) -> ET.Element:
    data = path.read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n')
    return ET.fromstring(data)


def urls(root: ET.Element) -> list[tuple[str, str | None]]:
    """(loc, lastmod) of each <url> of a <urlset>."""
    assert root.tag == f"{{{NAMESPACE}}}urlset"
    return [
        (url.findtext("s:loc", namespaces=NS) or "", url.findtext("s:lastmod", namespaces=NS))
        for url in root.findall("s:url", NS)
    ]


def listed(output: Path) -> list[tuple[str, str | None]]:
    """Every URL the sitemap lists, following its index if it is one."""
    root = parse(output / "sitemap.xml")
    if root.tag == f"{{{NAMESPACE}}}urlset":
        return urls(root)
    assert root.tag == f"{{{NAMESPACE}}}sitemapindex"
    found = []
    for entry in root.findall("s:sitemap", NS):
        loc = entry.findtext("s:loc", namespaces=NS) or ""
        assert loc.startswith(f"{BASE}/sitemap-")
        found += urls(parse(output / loc.removeprefix(f"{BASE}/")))
    return found


def projects(count: int) -> list[tuple[str, datetime | None]]:
    return [(f"proj-{n:03d}", WHEN + timedelta(hours=n)) for n in range(count)]


def test_the_limits_are_the_protocols() -> None:
    assert MAX_URLS == 50_000
    assert MAX_BYTES == 52_428_800


def test_a_small_site_is_one_list(tmp_path: Path) -> None:
    rows = [("foo", WHEN), ("bar-baz", None)]
    assert write_sitemap(tmp_path, BASE + "/", project_pages(rows)) == 5
    root = parse(tmp_path / "sitemap.xml")
    assert urls(root) == [
        (f"{BASE}/", None),
        (f"{BASE}/search/", None),
        (f"{BASE}/faq/", None),
        (f"{BASE}/project/foo/", "2026-11-01T12:00:00+00:00"),
        (f"{BASE}/project/bar-baz/", None),  # no time in the data: no <lastmod>
    ]
    # no temporary files; and robots.txt, where crawlers look for the sitemap unasked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["robots.txt", "sitemap.xml"]
    robots = (tmp_path / "robots.txt").read_text()
    assert robots.splitlines()[-1] == f"Sitemap: {BASE}/sitemap.xml"


def test_lastmod_is_utc_whatever_the_zone(tmp_path: Path) -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    rows = [
        ("east", datetime(2026, 1, 1, 5, 30, 0, 999, tzinfo=east)),
        ("naive", datetime(2026, 2, 3)),
    ]
    write_sitemap(tmp_path, BASE, project_pages(rows))
    assert dict(urls(parse(tmp_path / "sitemap.xml")))[f"{BASE}/project/east/"] == (
        "2026-01-01T00:00:00+00:00"
    )
    assert dict(urls(parse(tmp_path / "sitemap.xml")))[f"{BASE}/project/naive/"] == (
        "2026-02-03T00:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("count", "limit", "files"),
    [
        (10, 13, 0),  # 3 site pages + 10 projects: at the limit, one list
        (11, 13, 2),  # one past it: an index of two, the second with one URL
        (13, 4, 4),  # four full files
        (14, 4, 5),
    ],
)
def test_past_the_limit_an_index_names_numbered_sitemaps(
    tmp_path: Path, count: int, limit: int, files: int
) -> None:
    rows = projects(count)
    assert write_sitemap(tmp_path, BASE, project_pages(rows), max_urls=limit) == count + 3
    expected = [(url, None) for url in SITE] + [
        (f"{BASE}/project/{name}/", when.isoformat() if when else None) for name, when in rows
    ]
    assert listed(tmp_path) == expected
    numbered = sorted(p.name for p in tmp_path.glob("sitemap-*.xml"))
    assert numbered == [f"sitemap-{n}.xml" for n in range(1, files + 1)]
    if files:
        for entry in parse(tmp_path / "sitemap.xml"):
            name = (entry.findtext("s:loc", namespaces=NS) or "").removeprefix(f"{BASE}/")
            listing = urls(parse(tmp_path / name))
            assert len(listing) <= limit
            # each file's lastmod is the newest of its pages'
            newest = max(when for _, when in listing if when)
            assert entry.findtext("s:lastmod", namespaces=NS) == newest


def test_no_file_passes_the_byte_limit(tmp_path: Path) -> None:
    rows = projects(40)
    limit = 700
    write_sitemap(tmp_path, BASE, project_pages(rows), max_bytes=limit)
    sizes = [path.stat().st_size for path in sorted(tmp_path.glob("sitemap-*.xml"))]
    assert len(sizes) > 3
    assert all(size <= limit for size in sizes)
    # full files: one more <url> would not have fitted
    one_url = 120  # a <url> with a lastmod here is about this long
    assert all(size > limit - one_url for size in sizes[:-1])
    assert len(listed(tmp_path)) == 43


def test_a_shorter_list_deletes_the_numbered_files_no_index_names(tmp_path: Path) -> None:
    (tmp_path / "sitemap-extra.xml").write_text("not ours")
    write_sitemap(tmp_path, BASE, project_pages(projects(13)), max_urls=4)  # 4 files
    write_sitemap(tmp_path, BASE, project_pages(projects(5)), max_urls=4)  # 2 files
    assert sorted(p.name for p in tmp_path.glob("sitemap-*.xml")) == [
        "sitemap-1.xml",
        "sitemap-2.xml",
        "sitemap-extra.xml",
    ]
    assert len(listed(tmp_path)) == 8
    write_sitemap(tmp_path, BASE, project_pages(projects(1)), max_urls=4)  # one list
    assert sorted(p.name for p in tmp_path.glob("sitemap*.xml")) == [
        "sitemap-extra.xml",
        "sitemap.xml",
    ]


HOSTILE = [
    "a&b",
    "<script>alert(1)</script>",
    "quo\"te's",
    "]]>",
    "ünïcödé",
    "ctl\x01\x1b\x7f",
    "lone\ud800surrogate",
    "sp ace/../..",
    "q?x=1#frag",
    "%41%zz",
]


def test_hostile_names_come_out_as_valid_xml_and_urls(tmp_path: Path) -> None:
    rows = [(name, WHEN) for name in HOSTILE]
    write_sitemap(tmp_path, BASE, project_pages(rows))
    raw = (tmp_path / "sitemap.xml").read_bytes()
    assert raw.isascii()
    assert b"<script" not in raw
    assert b"a&amp;b" in raw  # & is allowed in a URL path, and escaped for XML
    locs = [loc for loc, _ in urls(parse(tmp_path / "sitemap.xml"))][3:]
    assert len(locs) == len(HOSTILE)
    for name, loc in zip(HOSTILE, locs, strict=True):
        segment = loc.removeprefix(f"{BASE}/project/").removesuffix("/")
        # one path segment of printable ASCII, that decodes back to the name
        assert "/" not in segment and "?" not in segment and "#" not in segment
        assert all(33 <= ord(c) < 127 for c in segment), segment
        if "\ud800" not in name:
            assert unquote(segment) == name
    assert locs[0] == f"{BASE}/project/a&b/"


def test_a_hostile_base_url_is_escaped_too(tmp_path: Path) -> None:
    base = "https://example.org/a&b<c>"
    write_sitemap(tmp_path, base, [Page("/x/")], max_urls=1)
    write_sitemap(tmp_path, base, [Page("/x/"), Page("/y/")], max_urls=1)
    index = parse(tmp_path / "sitemap.xml")
    loc = index.findtext("s:sitemap/s:loc", namespaces=NS)
    assert loc == f"https://example.org/a&b{quote('<c>')}/sitemap-1.xml"
    assert urls(parse(tmp_path / "sitemap-1.xml")) == [
        (f"https://example.org/a&b{quote('<c>')}/x/", None)
    ]


def test_writes_as_it_reads(tmp_path: Path) -> None:
    """The pages are taken one at a time: a file is written once full, before the rest are
    read (the whole list is never held)."""
    seen: list[int] = []

    def pages():
        for n in range(9):
            seen.append(len(list(tmp_path.glob("sitemap-*.xml"))))
            yield Page(f"/p{n}/")

    write_sitemap(tmp_path, BASE, pages(), max_urls=3)
    assert seen == [0, 0, 0, 0, 1, 1, 1, 2, 2]
