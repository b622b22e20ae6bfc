"""piwheels.web.request_handler over a real output directory, through a real HTTP client.

The directory is served_site.py's; each test asks for something and checks the status, the headers
and the body that came back.
"""

from __future__ import annotations

import gzip
import json

import pytest
from outputs import BROWSER_ACCEPT, PIP_ACCEPT, UV_ACCEPT, wheel_metadata
from served_site import Site, fetch

from piwheels.web.http_headers import HTML_V1_TYPE, JSON_TYPE
from piwheels.web.layout import log_path

# Negotiation -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/simple/", "/simple/piwtest-pure/"])
@pytest.mark.parametrize(
    ("accept", "content_type", "filename"),
    [
        (PIP_ACCEPT, JSON_TYPE, "index.json"),
        (UV_ACCEPT, JSON_TYPE, "index.json"),
        (HTML_V1_TYPE, HTML_V1_TYPE, "index.html"),
        (BROWSER_ACCEPT, "text/html; charset=utf-8", "index.html"),
        (None, "text/html; charset=utf-8", "index.html"),
    ],
)
def test_simple_pages_are_negotiated(
    site: Site, path: str, accept: str | None, content_type: str, filename: str
) -> None:
    response = fetch(site.server, path, {"Accept": accept} if accept else {})
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Vary"] == "Accept"
    assert response.body == (site.root / path.strip("/") / filename).read_bytes()
    if filename == "index.json":
        page = json.loads(response.body)
        assert page["meta"]["api-version"].startswith("1.")


@pytest.mark.parametrize("accept", ["application/json", f"{JSON_TYPE};q=0", "image/png"])
def test_nothing_acceptable_is_406(site: Site, accept: str) -> None:
    response = fetch(site.server, "/simple/piwtest-pure/", {"Accept": accept})
    assert response.status == 406
    assert response.headers["Vary"] == "Accept"
    assert JSON_TYPE.encode() in response.body and b"text/html" in response.body


def test_head_is_get_without_the_body(site: Site) -> None:
    get = fetch(site.server, "/simple/piwtest-pure/", {"Accept": PIP_ACCEPT})
    head = fetch(site.server, "/simple/piwtest-pure/", {"Accept": PIP_ACCEPT}, method="HEAD")
    assert head.status == 200 and head.body == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Vary", "Cache-Control"):
        assert head.headers[name] == get.headers[name]


def test_other_directories_serve_their_index(site: Site) -> None:
    page = fetch(site.server, "/project/piwtest-pure/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"piwtest-pure" in page.body
    assert "Vary" not in page.headers  # not negotiated
    data = fetch(site.server, "/project/piwtest-pure/json/")
    assert data.headers["Content-Type"] == "application/json"
    assert json.loads(data.body)["name"] == "piwtest-pure"


# Redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple/PiwTest_Pure/", "/simple/piwtest-pure/"),
        ("/simple/piwtest..pure/", "/simple/piwtest-pure/"),
        ("/simple/PIWTEST-PURE/?format=x", "/simple/piwtest-pure/?format=x"),
        ("/project/Piwtest.Pure/json/", "/project/piwtest-pure/json/"),
        ("/simple/piwtest-pure", "/simple/piwtest-pure/"),
        ("/search", "/search/"),
    ],
)
def test_redirects(site: Site, path: str, location: str) -> None:
    response = fetch(site.server, path)
    assert (response.status, response.headers["Location"]) == (301, location)


def test_redirect_then_negotiate(site: Site) -> None:
    first = fetch(site.server, "/simple/PiwTest_Pure/", {"Accept": PIP_ACCEPT})
    second = fetch(site.server, first.headers["Location"], {"Accept": PIP_ACCEPT})
    assert second.headers["Content-Type"] == JSON_TYPE


# Files, ranges, caching -----------------------------------------------------------------------


def test_wheel_and_metadata(site: Site) -> None:
    base = f"/simple/piwtest-pure/{site.wheel.name}"
    wheel = fetch(site.server, base)
    assert wheel.status == 200 and wheel.body == site.wheel.read_bytes()
    assert wheel.headers["Content-Type"] == "application/octet-stream"
    assert wheel.headers["Accept-Ranges"] == "bytes"
    assert "immutable" in wheel.headers["Cache-Control"]
    metadata = fetch(site.server, base + ".metadata")
    assert metadata.body == wheel_metadata(site.wheel)
    assert metadata.headers["Content-Type"] == "text/plain; charset=utf-8"
    index = fetch(site.server, "/simple/piwtest-pure/")
    assert index.headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=10-999999", 10, None),
    ],
)
def test_single_range_is_206(site: Site, header: str, first: int, last: int | None) -> None:
    data = site.wheel.read_bytes()
    response = fetch(site.server, f"/simple/piwtest-pure/{site.wheel.name}", {"Range": header})
    expected = data[first : None if last is None else last + 1]
    assert response.status == 206
    assert response.body == expected
    start = first % len(data)
    assert response.headers["Content-Range"] == (
        f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    )
    assert response.headers["Content-Length"] == str(len(expected))


def test_unsatisfiable_range_is_416(site: Site) -> None:
    size = site.wheel.stat().st_size
    response = fetch(
        site.server, f"/simple/piwtest-pure/{site.wheel.name}", {"Range": f"bytes={size}-"}
    )
    assert response.status == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "pages=1-2", "bytes=x-y"])
def test_ranges_we_ignore_give_the_whole_file(site: Site, header: str) -> None:
    response = fetch(site.server, f"/simple/piwtest-pure/{site.wheel.name}", {"Range": header})
    assert response.status == 200 and response.body == site.wheel.read_bytes()


def test_if_range_with_a_stale_etag_gives_the_whole_file(site: Site) -> None:
    path = f"/simple/piwtest-pure/{site.wheel.name}"
    etag = fetch(site.server, path, method="HEAD").headers["ETag"]
    assert fetch(site.server, path, {"Range": "bytes=0-9", "If-Range": etag}).status == 206
    stale = fetch(site.server, path, {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status == 200 and stale.body == site.wheel.read_bytes()


def test_conditional_requests(site: Site) -> None:
    path = f"/simple/piwtest-pure/{site.wheel.name}"
    first = fetch(site.server, path)
    again = fetch(site.server, path, {"If-None-Match": first.headers["ETag"]})
    assert (again.status, again.body) == (304, b"")
    since = fetch(site.server, path, {"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status == 304
    assert fetch(site.server, path, {"If-None-Match": '"other"'}).status == 200


# Logs -------------------------------------------------------------------------------------


def test_logs_are_sent_gzipped_as_text(site: Site) -> None:
    url = "/" + log_path(1001).removesuffix(".gz")
    response = fetch(site.server, url, {"Accept-Encoding": "gzip, deflate, br"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert response.body == (site.root / log_path(1001)).read_bytes()
    assert gzip.decompress(response.body).startswith(b"building for cp39")


def test_logs_are_decompressed_for_clients_without_gzip(site: Site) -> None:
    url = "/" + log_path(1001).removesuffix(".gz")
    for headers in ({}, {"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0"}):
        response = fetch(site.server, url, headers)
        assert "Content-Encoding" not in response.headers
        assert response.body.startswith(b"building for cp39")


def test_the_gzip_file_itself_is_a_download(site: Site) -> None:
    response = fetch(site.server, "/" + log_path(1001), {"Accept-Encoding": "gzip"})
    assert response.headers["Content-Type"] == "application/gzip"
    assert "Content-Encoding" not in response.headers


def test_missing_log_is_404(site: Site) -> None:
    assert fetch(site.server, "/" + log_path(999_999).removesuffix(".gz")).status == 404
