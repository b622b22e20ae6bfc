"""piwheels.web.server over a real output directory, through a real HTTP client (http.client).

The directory holds what the renderers write for two projects, plus the hostile things a static
server must never hand out: symlinks leading out, a FIFO, a writer's temporary file.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from outputs import (
    BROWSER_ACCEPT,
    PIP_ACCEPT,
    SECRET,
    UV_ACCEPT,
    Response,
    publish,
    wheel_metadata,
)
from outputs import fetch as fetch_url

from piwheels.web.layout import log_path
from piwheels.web.server import (
    HTML_V1_TYPE,
    JSON_TYPE,
    OutputServer,
    negotiate,
    parse_range,
    serve,
)
from pypi_index import make_wheel


class Site(NamedTuple):
    server: OutputServer
    root: Path
    wheel: Path  # a wheel in the index (the original, outside it)


def fetch(
    server: OutputServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Response:
    return fetch_url(server.url, path, headers, method)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("site")
    wheels = base / "wheels"
    made = [
        make_wheel("piwtest-pure", "1.0", wheels),
        make_wheel("piwtest-pure", "1.1", wheels),
        make_wheel("piwtest-cext", "1.0", wheels, tag="cp311-cp311-linux_x86_64"),
    ]
    root = base / "www"
    publish(root, made)
    outside = base / "secret.txt"
    outside.write_bytes(SECRET)
    project = root / "simple" / "piwtest-pure"
    (project / "escape.whl").symlink_to(outside)
    (root / "simple" / "outside").symlink_to(base)  # a directory leading out
    (project / "inside.whl").symlink_to(project / made[0].name)  # stays inside: allowed
    (project / ".index.html.x1y2.tmp").write_text("half a page")
    os.mkfifo(project / "pipe.whl")
    with serve(root) as server:
        yield Site(server, root, made[0])


# Negotiation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        ("*/*", "text/html"),
        (BROWSER_ACCEPT, "text/html"),
        ("text/html", "text/html"),
        (PIP_ACCEPT, JSON_TYPE),
        (UV_ACCEPT, JSON_TYPE),
        (HTML_V1_TYPE, HTML_V1_TYPE),
        (JSON_TYPE, JSON_TYPE),
        # q-values, not the order written, decide.
        (f"text/html;q=0.5, {JSON_TYPE};q=0.9", JSON_TYPE),
        (f"{JSON_TYPE};q=0.2, text/html", "text/html"),
        # A wildcard does not override what the client refused by name.
        (f"{JSON_TYPE};q=0, */*", "text/html"),
        (f"text/html;q=0, {HTML_V1_TYPE};q=0, */*;q=0.1", JSON_TYPE),
        # Named beats wildcard at equal quality.
        (f"*/*, {JSON_TYPE}", JSON_TYPE),
        ("application/*", HTML_V1_TYPE),
        ("TEXT/HTML; Q=0.3", "text/html"),
        ("application/json", None),
        (f"{JSON_TYPE};q=0", None),
        (f"{JSON_TYPE};q=oops", None),
        ("image/png, text/plain", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


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


@pytest.mark.parametrize("path", ["/simple/index.html", "/simple/index.json"])
def test_the_root_index_files_are_not_project_names(site: Site, path: str) -> None:
    response = fetch(site.server, path)
    assert response.status == 200
    assert response.body == (site.root / path.lstrip("/")).read_bytes()


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


def test_parse_range_edges() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=", 10) is None  # malformed: ignored, not refused
    with pytest.raises(ValueError, match="unsatisfiable"):
        parse_range("bytes=-0", 10)
    with pytest.raises(ValueError, match="unsatisfiable"):
        parse_range("bytes=-5", 0)


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


# Never outside the directory -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/../secret.txt", 400),
        ("/simple/../../secret.txt", 400),
        ("/simple/%2e%2e/%2e%2e/secret.txt", 400),
        ("/simple/%2E%2E%2F%2E%2E%2Fsecret.txt", 400),
        ("/static/..%5c..%5csecret.txt", 404),  # a backslash is a plain character on POSIX
        ("/simple/piwtest-pure/index.html%00.whl", 400),
        ("/simple/%ff/", 400),
        ("//secret.txt", 404),
        ("secret.txt", 400),
        ("/simple/piwtest-pure/escape.whl", 404),
        ("/simple/outside/secret.txt", 404),
        ("/simple/outside/", 404),
        ("/simple/piwtest-pure/.index.html.x1y2.tmp", 404),
        ("/simple/piwtest-pure/pipe.whl", 404),
    ],
)
def test_nothing_outside_is_served(
    site: Site, path: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="piwheels.web.server"):
        response = fetch(site.server, path)
    assert response.status == status
    assert SECRET not in response.body and b"half a page" not in response.body
    if status == 400 or "escape" in path or "outside/" in path:
        assert any("refused" in record.getMessage() for record in caplog.records), path


def test_symlinks_inside_are_followed(site: Site) -> None:
    response = fetch(site.server, "/simple/piwtest-pure/inside.whl")
    assert response.status == 200 and response.body == site.wheel.read_bytes()


def test_requests_are_logged(site: Site) -> None:
    site.server.clear_requests()
    fetch(site.server, f"/simple/piwtest-pure/{site.wheel.name}", {"Range": "bytes=0-9"})
    assert site.server.wait_idle()
    [entry] = site.server.requests
    assert (entry.method, entry.status, entry.range, entry.sent) == ("GET", 206, "bytes=0-9", 10)


# Life cycle ------------------------------------------------------------------------------


def test_stop_closes_idle_keep_alive_connections(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("hello")
    server = serve(tmp_path)
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), port, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.read() == b"hello"
    assert response.getheader("Connection") != "close"  # kept alive, a thread waiting on it
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    # Neither the accept loop nor the handler thread of the idle connection is left.
    assert not [t for t in threading.enumerate() if t.name == f"web-server-{port}"]
    assert not server._threads
    with pytest.raises(OSError):
        socket.create_connection((str(host), port), timeout=1).close()
    connection.close()


def test_stop_interrupts_a_download_in_progress(tmp_path: Path) -> None:
    with (tmp_path / "big.whl").open("wb") as file:
        file.truncate(256 * 1024 * 1024)  # sparse: costs no disk
    server = serve(tmp_path)
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=10) as client:
        client.sendall(b"GET /big.whl HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        # The client stops reading; the handler's sendfile blocks on a full socket buffer.
        time.sleep(0.2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
    assert not server._threads


def test_serving_a_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="nowhere"):
        serve(tmp_path / "nowhere")


def test_serving_a_directory_by_hand(tmp_path: Path) -> None:
    """``python -m piwheels.web.server`` serves a directory until SIGTERM (#14)."""
    (tmp_path / "simple").mkdir()
    (tmp_path / "simple" / "index.html").write_text("<html>the index</html>")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "piwheels.web.server", str(tmp_path), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/") as reply:
                    assert reply.read() == b"<html>the index</html>"
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the server never answered")
        server.terminate()
        output, _ = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0
    assert f"serving {tmp_path.resolve()} on http://127.0.0.1:{port}/" in output
    assert "GET /simple/" in output


def test_serving_by_hand_says_what_is_wrong(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "piwheels.web.server"]
    usage = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert usage.returncode == 0 and "--bind ADDRESS" in usage.stdout
    missing = subprocess.run(
        [*command, str(tmp_path / "nowhere")], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2 and "not a directory" in missing.stderr
