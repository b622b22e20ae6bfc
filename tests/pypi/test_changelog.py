"""piwheels.pypi.changelog against a real XML-RPC server on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest

from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import MalformedResponse, PyPIUnavailable, UnsupportedIndex


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
