"""piwheels.pypi against real HTTP servers on 127.0.0.1.

LocalPyPI (tests/pypi_index.py) plays PyPI for the normal cases. For the answers it never gives
(bad JSON, a 500, a stale header, HTML only, a server that stalls), each test starts a tiny
server of its own that answers exactly that: nothing in urllib is patched.
"""

from __future__ import annotations

import gzip
import json
import logging
import pickle
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from piwheels import __version__
from piwheels.pypi import (
    MalformedResponse,
    ProjectNotFound,
    ProjectSerial,
    PyPIClient,
    PyPIError,
    PyPIUnavailable,
    StaleResponse,
    UnsupportedIndex,
    diff_serials,
)
from pypi_index import LocalPyPI, SdistFactory

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"

# LocalPyPI ---------------------------------------------------------------------------------------


@pytest.fixture
def index(test_sdists: SdistFactory, tmp_path: Path) -> Iterator[LocalPyPI]:
    """A LocalPyPI with two projects; no build dependencies, since nothing is built here."""
    with LocalPyPI(sdists=test_sdists, work_dir=tmp_path) as local:
        local.add_catalogue(
            [
                ("piwtest-pure", "1.0", None),
                ("piwtest-pure", "1.1", "broken release, use 1.0"),
                ("piwtest-cext", "1.0", None),
            ]
        )
        yield local


@pytest.fixture
def client(index: LocalPyPI) -> PyPIClient:
    return PyPIClient(index.simple_url, index.json_url, timeout=10)


def test_list_projects(index: LocalPyPI, client: PyPIClient) -> None:
    serial, projects = client.list_projects()
    assert serial == index.serial
    assert projects == {
        name: ProjectSerial(name, name, index.project_serial(name))
        for name in ("piwtest-cext", "piwtest-pure")
    }
    request = index.requests[-1]
    assert request.accept == SIMPLE_JSON
    assert request.user_agent == f"piwheels/{__version__}"


def test_diff_after_add_yank_remove(index: LocalPyPI, client: PyPIClient) -> None:
    before = client.list_projects()
    known = {key: entry.serial for key, entry in before.projects.items()}
    assert client.changed_projects(known) == (before.serial, [], [])

    index.add_version("piwtest-abi3", "1.0")
    index.yank("piwtest-pure", "1.0", "oops")
    index.remove_project("piwtest-cext")

    changes = client.changed_projects(known)
    assert changes.serial == index.serial > before.serial
    # Lowest serial first: the order the changes happened in.
    assert [entry.name for entry in changes.changed] == ["piwtest-abi3", "piwtest-pure"]
    assert changes.removed == ["piwtest-cext"]

    # Recording them leaves nothing to do.
    known = {key: entry.serial for key, entry in client.list_projects().projects.items()}
    assert client.changed_projects(known) == (index.serial, [], [])


def test_project_details(index: LocalPyPI, client: PyPIClient) -> None:
    released = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    index.add_wheel_only_version(
        "piwtest-pure", "2.0", requires_python=">=3.10", upload_time=released
    )
    info = client.project("piwtest-pure")
    assert (info.name, info.canonical_name) == ("piwtest-pure", "piwtest-pure")
    assert info.serial == index.project_serial("piwtest-pure")
    assert info.summary
    versions = {v.version: v for v in info.versions}
    assert sorted(versions) == ["1.0", "1.1", "2.0"]

    sdist = versions["1.0"]
    assert sdist.has_sdist and sdist.valid
    assert sdist.requires_python == ">=3.8"
    assert not sdist.yanked and sdist.yanked_reason is None
    assert sdist.released is not None and sdist.released.tzinfo is not None
    assert abs(datetime.now(UTC) - sdist.released).total_seconds() < 600

    yanked = versions["1.1"]
    assert yanked.yanked and yanked.yanked_reason == "broken release, use 1.0"

    wheel_only = versions["2.0"]
    assert not wheel_only.has_sdist
    assert wheel_only.requires_python == ">=3.10"
    assert wheel_only.released == released


def test_project_after_version_removed(index: LocalPyPI, client: PyPIClient) -> None:
    index.remove_version("piwtest-pure", "1.1")
    info = client.project("piwtest-pure", min_serial=index.project_serial("piwtest-pure"))
    assert [v.version for v in info.versions] == ["1.0"]


def test_project_by_unnormalised_name(client: PyPIClient) -> None:
    assert client.project("PIWTEST_Pure").canonical_name == "piwtest-pure"


def test_project_not_found(index: LocalPyPI, client: PyPIClient) -> None:
    with pytest.raises(ProjectNotFound) as caught:
        client.project("no-such-project")
    assert "no-such-project" in str(caught.value)
    assert index.url in str(caught.value)

    index.clear_requests()
    with pytest.raises(ProjectNotFound, match=r"'\.\./etc'"):
        client.project("../etc")
    assert index.requests == []  # never turned into a URL


def test_stale_by_min_serial(index: LocalPyPI, client: PyPIClient) -> None:
    with pytest.raises(StaleResponse) as caught:
        client.list_projects(min_serial=index.serial + 1)
    assert isinstance(caught.value, PyPIUnavailable)  # so callers retry later
    assert (caught.value.serial, caught.value.expected) == (index.serial, index.serial + 1)

    serial = index.project_serial("piwtest-pure")
    with pytest.raises(StaleResponse, match="piwtest-pure/json"):
        client.project("piwtest-pure", min_serial=serial + 1)


# Servers that misbehave on purpose ---------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up on a stalled answer on purpose; that is not worth a traceback."""


@contextmanager
def serve(
    answer: Callable[[BaseHTTPRequestHandler], Reply | None], *, keep_alive: bool = False
) -> Iterator[str]:
    """Serve *answer* on 127.0.0.1 and give its base URL; None means the answer wrote itself.
    With *keep_alive* it speaks HTTP/1.1 and keeps connections open between requests."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_GET(self) -> None:
            reply = answer(self)
            if reply is None:
                return
            status, headers, body = reply
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def json_reply(
    document: Any, *, serial: int | None = None, content_type: str = SIMPLE_JSON
) -> Reply:
    headers = {"Content-Type": content_type}
    if serial is not None:
        headers["X-PyPI-Last-Serial"] = str(serial)
    return 200, headers, json.dumps(document).encode()


def root(projects: list[Any], serial: int | None = 100, api: str = "1.1") -> dict[str, Any]:
    meta: dict[str, Any] = {"api-version": api}
    if serial is not None:
        meta["_last-serial"] = serial
    return {"meta": meta, "projects": projects}


def client_for(base: str, **kwargs: Any) -> PyPIClient:
    return PyPIClient(f"{base}/simple/", f"{base}/pypi", **kwargs)


def test_malformed_entries_skipped(caplog: pytest.LogCaptureFixture) -> None:
    document = root(
        [
            {"name": "Good.Name", "_last-serial": 7},
            {"_last-serial": 8, "name": "other", "extra": [1]},
            {"name": "../etc", "_last-serial": 1},
            {"name": "flag", "_last-serial": True},
            {"name": "negative", "_last-serial": -1},
            {"name": 5, "_last-serial": 1},
            {"name": "no-serial"},
            "a string",
            # Two spellings of one project: the later change wins.
            {"name": "Dup", "_last-serial": 9},
            {"name": "dup", "_last-serial": 3},
        ]
    )
    with (
        serve(lambda _: json_reply(document, serial=100)) as base,
        caplog.at_level(logging.WARNING),
    ):
        serial, projects = client_for(base).list_projects()
    assert serial == 100
    assert projects == {
        "good-name": ProjectSerial("Good.Name", "good-name", 7),
        "other": ProjectSerial("other", "other", 8),
        "dup": ProjectSerial("Dup", "dup", 9),
    }
    messages = [record.getMessage() for record in caplog.records]
    assert any("skipped 6 malformed project entries" in message for message in messages)
    assert any("'Dup'" in message and "'dup'" in message for message in messages)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"meta": {"api-version": "1.1"}, "projects": [', "bad JSON at line 1 column"),
        (b"[1, 2]", "expected an object"),
        (b'{"meta": {"api-version": "1.1"}}', "'projects'"),
        (b'{"meta": {}, "projects": []}', "api-version is None"),
        (b'{"meta": {"api-version": "1.1", "_last-serial": "9"}, "projects": []}', "'9'"),
        (b"\xff\xfe{}", "not UTF-8 at byte 0"),
    ],
)
def test_malformed_root(body: bytes, problem: str) -> None:
    with (
        serve(lambda _: (200, {"Content-Type": SIMPLE_JSON}, body)) as base,
        pytest.raises(MalformedResponse) as caught,
    ):
        client_for(base).list_projects()
    assert problem in str(caught.value)
    assert f"{base}/simple/" in str(caught.value)


def test_serial_from_header_or_projects() -> None:
    document = root([{"name": "a", "_last-serial": 5}, {"name": "b", "_last-serial": 9}], None)
    with serve(lambda _: json_reply(document, serial=12)) as base:
        assert client_for(base).list_projects().serial == 12
    with serve(lambda _: json_reply(document)) as base:
        assert client_for(base).list_projects().serial == 9


def test_no_index_there() -> None:
    with (
        serve(lambda _: (404, {"Content-Type": "text/plain"}, b"Not Found\n")) as base,
        pytest.raises(UnsupportedIndex, match="HTTP 404: no simple index there"),
    ):
        client_for(base).list_projects()


def test_stale_header() -> None:
    document = root([{"name": "a", "_last-serial": 5}], 12)
    with (
        serve(lambda _: json_reply(document, serial=10)) as base,
        pytest.raises(StaleResponse, match="serial 10 where 12 is known"),
    ):
        client_for(base).list_projects()


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


def test_future_api_version() -> None:
    with (
        serve(lambda _: json_reply(root([], api="2.0"))) as base,
        pytest.raises(UnsupportedIndex, match=r"2\.0"),
    ):
        client_for(base).list_projects()


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


# Project details from a hand-written JSON API ----------------------------------------------------


def file_entry(
    filename: str,
    packagetype: str,
    uploaded: str,
    requires_python: str | None = None,
    *,
    yanked: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "filename": filename,
        "packagetype": packagetype,
        "upload_time_iso_8601": uploaded,
        "requires_python": requires_python,
        "yanked": yanked,
        "yanked_reason": reason,
        "digests": {"sha256": "0" * 64},
        "size": 1,
        "url": f"https://files.example/{filename}",
    }


def project_document(releases: dict[str, Any], *, name: str = "Demo_Pkg") -> dict[str, Any]:
    info = {
        "name": name,
        "summary": "A demo",
        "description": "Long text",
        "description_content_type": "text/markdown",
        "requires_python": None,
    }
    return {"info": info, "releases": releases, "last_serial": 42, "urls": []}


def test_project_fields() -> None:
    releases = {
        "1.0": [
            # The wheel came first; the sdist's Requires-Python is the one that counts.
            file_entry(
                "demo_pkg-1.0-py3-none-any.whl", "bdist_wheel", "2020-01-01T00:00:00Z", ">=3.6"
            ),
            file_entry("demo_pkg-1.0.tar.gz", "sdist", "2020-01-02T00:00:00.5Z", ">=3.7"),
        ],
        "1.1": [
            file_entry(
                "demo_pkg-1.1-cp311-cp311-linux_x86_64.whl",
                "bdist_wheel",
                "2021-03-04T05:06:07+02:00",
                " >=3.11 ",
            ),
        ],
        "1.2": [
            file_entry(
                "demo_pkg-1.2.tar.gz",
                "sdist",
                "2022-01-01T00:00:00Z",
                "",
                yanked=True,
                reason="bad",
            ),
        ],
        # Legacy versions PyPI still serves: kept, flagged, never a crash.
        "2004d": [
            {
                "filename": "demo_pkg-2004d.zip",
                "packagetype": "sdist",
                "upload_time": "2004-06-01T10:00:00",
            }
        ],
        "1.0-beta-final-really": [],
        "3.0": ["not a file", file_entry("demo_pkg-3.0.tar.gz", "sdist", "bad time")],
    }
    seen: list[str] = []

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        seen.append(handler.path)
        return json_reply(project_document(releases), serial=42, content_type="application/json")

    with serve(answer) as base:
        info = client_for(base).project("demo.pkg", min_serial=42)
    assert seen == ["/pypi/demo-pkg/json"]
    assert (info.name, info.canonical_name, info.serial) == ("Demo_Pkg", "demo-pkg", 42)
    assert (info.summary, info.description, info.description_content_type) == (
        "A demo",
        "Long text",
        "text/markdown",
    )
    versions = {v.version: v for v in info.versions}
    assert list(versions) == list(releases)

    v10 = versions["1.0"]
    assert v10.released == datetime(2020, 1, 1, tzinfo=UTC)
    assert (v10.requires_python, v10.has_sdist, v10.yanked, v10.valid) == (
        ">=3.7",
        True,
        False,
        True,
    )

    v11 = versions["1.1"]
    assert v11.released == datetime(2021, 3, 4, 3, 6, 7, tzinfo=UTC)
    assert v11.released.tzinfo is UTC
    assert (v11.requires_python, v11.has_sdist) == (">=3.11", False)

    v12 = versions["1.2"]
    assert (v12.yanked, v12.yanked_reason, v12.requires_python) == (True, "bad", None)

    legacy = versions["2004d"]
    assert not legacy.valid
    assert legacy.has_sdist
    assert legacy.released == datetime(2004, 6, 1, 10, tzinfo=UTC)

    empty = versions["1.0-beta-final-really"]
    assert not empty.valid
    assert (empty.released, empty.has_sdist, empty.yanked) == (None, False, False)

    v30 = versions["3.0"]
    assert (v30.released, v30.has_sdist) == (None, True)


@pytest.mark.parametrize(
    ("document", "serial", "error", "problem"),
    [
        (project_document({}, name="someone-else"), 42, MalformedResponse, "'someone-else'"),
        ({"info": {}, "last_serial": 42}, 42, MalformedResponse, "'releases'"),
        ({**project_document({}), "last_serial": "42"}, 42, MalformedResponse, "'42'"),
        (project_document({}), 41, StaleResponse, "serial 41 where 42 is known"),
    ],
)
def test_bad_project(document: Any, serial: int, error: type[Exception], problem: str) -> None:
    reply = json_reply(document, serial=serial, content_type="application/json")
    with serve(lambda _: reply) as base, pytest.raises(error) as caught:
        client_for(base).project("demo-pkg")
    assert problem in str(caught.value)
    assert f"{base}/pypi/demo-pkg/json" in str(caught.value)


def test_project_not_json() -> None:
    with (
        serve(lambda _: (200, {"Content-Type": "text/html"}, b"<html></html>")) as base,
        pytest.raises(MalformedResponse, match="'text/html' is not JSON"),
    ):
        client_for(base).project("demo-pkg")


# XML-RPC -----------------------------------------------------------------------------------------


class _PyPIPath(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/pypi",)  # where PyPI has it


@contextmanager
def xmlrpc_server(changelog: Callable[..., Any]) -> Iterator[str]:
    server = SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=_PyPIPath, logRequests=False, allow_none=True
    )
    server.register_function(changelog, "changelog_since_serial")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/pypi"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_changelog_since_serial(caplog: pytest.LogCaptureFixture) -> None:
    def changelog(serial: int) -> list[Any]:
        return [
            ["Foo_Bar", "1.0", 1_700_000_000, "new release", serial + 1],
            ["baz", None, 1_700_000_001, "remove project", serial + 2],
            ["../bad", "1.0", 1, "new release", serial + 3],
            ["short row"],
        ]

    with xmlrpc_server(changelog) as url, caplog.at_level(logging.WARNING):
        client = PyPIClient("http://127.0.0.1:1/simple/", "http://127.0.0.1:1/pypi", xmlrpc_url=url)
        entries = client.changelog_since_serial(10)
    assert [(e.canonical_name, e.version, e.action, e.serial) for e in entries] == [
        ("foo-bar", "1.0", "new release", 11),
        ("baz", None, "remove project", 12),
    ]
    assert entries[0].time == datetime.fromtimestamp(1_700_000_000, UTC)
    assert "skipped 2 malformed changelog rows" in caplog.text


def test_changelog_errors() -> None:
    no_rpc = PyPIClient("http://127.0.0.1:1/simple/", "http://127.0.0.1:1/pypi")
    with pytest.raises(UnsupportedIndex, match="no XML-RPC URL"):
        no_rpc.changelog_since_serial(1)

    def failing(serial: int) -> Any:
        raise ValueError(f"serial {serial} too old")

    with xmlrpc_server(failing) as url:
        client = PyPIClient(no_rpc.simple_url, no_rpc.json_url, xmlrpc_url=url)
        with pytest.raises(MalformedResponse, match="too old"):
            client.changelog_since_serial(1)

    release = threading.Event()
    with xmlrpc_server(lambda serial: release.wait(10) and []) as url:
        client = PyPIClient(no_rpc.simple_url, no_rpc.json_url, xmlrpc_url=url, timeout=0.3)
        try:
            with pytest.raises(PyPIUnavailable, match="timed out"):
                client.changelog_since_serial(1)
        finally:
            release.set()


# Pure parts --------------------------------------------------------------------------------------


def test_diff_serials() -> None:
    projects = {
        "a": ProjectSerial("A", "a", 5),
        "b": ProjectSerial("b", "b", 3),
        "c": ProjectSerial("c", "c", 9),
        "d": ProjectSerial("d", "d", 1),
    }
    # b's lower serial means our record is wrong: fetch it again rather than trust it.
    changed, removed = diff_serials({"a": 5, "b": 4, "d": 0, "gone": 2, "also-gone": 7}, projects)
    assert [entry.canonical_name for entry in changed] == ["d", "b", "c"]
    assert removed == ["also-gone", "gone"]


def test_errors_pickle_and_quote_input() -> None:
    errors = [
        PyPIUnavailable("https://x/simple/", "HTTP 503"),
        StaleResponse("https://x/simple/", 1, 2),
        ProjectNotFound("Foo", "https://x/pypi/foo/json"),
        MalformedResponse("https://x/pypi/foo/json", "bad JSON"),
        UnsupportedIndex("https://x/simple/", "HTML only"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert "https://x/" in str(error)


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
