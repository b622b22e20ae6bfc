"""piwheels.pypi.fetching: HTTP errors, content types, limits, timeouts and kept connections."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from scripted_index import (
    SIMPLE_JSON,
    Reply,
    client_for,
    file_entry,
    json_reply,
    project_document,
    root,
    serve,
)

from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import MalformedResponse, PyPIError, PyPIUnavailable, UnsupportedIndex


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_unavailable(status: int) -> None:
    with serve(lambda _: (status, {"Content-Type": "text/plain"}, b"down\n")) as base:
        client = client_for(base)
        with pytest.raises(PyPIUnavailable, match=f"HTTP {status}"):
            client.list_projects()
        with pytest.raises(PyPIUnavailable, match=f"HTTP {status}"):
            client.project("anything")


def test_other_client_error() -> None:
    with (
        serve(lambda _: (403, {"Content-Type": "text/plain"}, b"no\n")) as base,
        pytest.raises(PyPIError, match="HTTP 403") as caught,
    ):
        client_for(base).list_projects()
    assert not isinstance(caught.value, PyPIUnavailable)


@pytest.mark.parametrize(
    "reply",
    [
        (200, {"Content-Type": "text/html"}, b"<html><a href='/simple/a/'>a</a></html>"),
        (406, {"Content-Type": "text/plain"}, b"not acceptable\n"),
    ],
)
def test_html_only_index(reply: Reply) -> None:
    with serve(lambda _: reply) as base, pytest.raises(UnsupportedIndex, match="PEP 691"):
        client_for(base).list_projects()


def test_project_not_json() -> None:
    with (
        serve(lambda _: (200, {"Content-Type": "text/html"}, b"<html></html>")) as base,
        pytest.raises(MalformedResponse, match="'text/html' is not JSON"),
    ):
        client_for(base).project("demo-pkg")


def test_gzip_and_size_limit() -> None:
    document = root([{"name": f"p{i}", "_last-serial": i} for i in range(1000)], 999)
    body = gzip.compress(json.dumps(document).encode())
    headers = {"Content-Type": SIMPLE_JSON, "Content-Encoding": "gzip"}
    with serve(lambda _: (200, headers, body)) as base:
        assert len(client_for(base).list_projects().projects) == 1000
        # The limit holds for what the gzip inflates to, not only for what crosses the wire.
        with pytest.raises(MalformedResponse, match="inflates past 20000 bytes"):
            client_for(base, max_bytes=20_000).list_projects()
        with pytest.raises(MalformedResponse, match="over the 100 limit"):
            client_for(base, max_bytes=100).list_projects()


def test_stalled_server_times_out() -> None:
    release = threading.Event()

    def stall(_: BaseHTTPRequestHandler) -> Reply:
        release.wait(10)
        return json_reply(root([]))

    def stall_mid_body(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", SIMPLE_JSON)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"meta": ')
        handler.wfile.flush()
        release.wait(10)

    try:
        for answer in (stall, stall_mid_body):
            with serve(answer) as base:
                start = time.monotonic()
                with pytest.raises(PyPIUnavailable, match="timed out"):
                    client_for(base, timeout=0.3).list_projects()
                assert time.monotonic() - start < 5
    finally:
        release.set()


def test_connection_refused() -> None:
    with serve(lambda _: None) as base:
        pass  # the port is free again once the server has stopped
    with pytest.raises(PyPIUnavailable, match=base.replace("http://", "")):
        client_for(base, timeout=2).list_projects()


def test_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="file:///srv/simple"):
        PyPIClient("file:///srv/simple/", "https://pypi.org/pypi")
    for target in ("file:///etc/passwd", "ftp://127.0.0.1/simple/"):
        location = {"Location": target, "Content-Type": "text/plain"}
        with (
            serve(lambda _: (302, location, b"")) as base,  # noqa: B023 (used at once)
            pytest.raises(PyPIError, match=rf"(?i)redirect.*'{re.escape(target)}'"),
        ):
            client_for(base).list_projects()


def test_requests_share_a_kept_alive_connection() -> None:
    """One connection for many projects; one the server dropped while idle is made again."""
    document = project_document({"1.0": [file_entry("demo-1.0.tar.gz", "sdist", "2024-01-01")]})
    connections: list[Any] = []

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        if handler.client_address not in connections:
            connections.append(handler.client_address)
        if handler.path.endswith("/hang-up/json"):
            handler.close_connection = True  # without saying so, as an idle timeout would
        return json_reply(document, serial=42, content_type="application/json")

    with serve(answer, keep_alive=True) as base:
        client = client_for(base)
        for _ in range(5):
            assert client.project("Demo_Pkg").serial == 42
        assert len(connections) == 1
        with pytest.raises(MalformedResponse, match="asked for 'hang-up'"):
            client.project("hang-up")
        for _ in range(3):
            assert client.project("Demo_Pkg").serial == 42
        assert len(connections) == 2
        # each thread its own
        other = threading.Thread(target=client.project, args=("Demo_Pkg",))
        other.start()
        other.join()
        assert len(connections) == 3


def test_a_not_found_page_keeps_the_connection() -> None:
    """A 404 with a page (PyPI's has one) is read to its end: the next project's request goes
    on the same connection, not a new one (a TLS handshake each, against PyPI)."""
    document = project_document({})
    connections: set[Any] = set()

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        connections.add(handler.client_address)
        if handler.path == "/pypi/gone/json":
            return 404, {"Content-Type": "text/html"}, b"<html>Not Found</html>" * 200
        return json_reply(document, serial=42, content_type="application/json")

    with serve(answer, keep_alive=True) as base:
        client = client_for(base)
        for _ in range(3):
            with pytest.raises(PyPIError, match="gone"):
                client.project("gone")
            assert client.project("Demo_Pkg").serial == 42
    assert len(connections) == 1


def test_kept_alive_connection_still_follows_redirects_checked() -> None:
    document = project_document({})

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        if handler.path == "/pypi/old/json":
            return 301, {"Location": "/pypi/demo-pkg/json", "Content-Type": "text/plain"}, b""
        return json_reply(document, serial=42, content_type="application/json")

    with serve(answer, keep_alive=True) as base:
        client = client_for(base)
        with pytest.raises(MalformedResponse, match="asked for 'old'"):
            client.project("old")  # followed, and the answer is judged as before
        assert client.project("Demo_Pkg").serial == 42
