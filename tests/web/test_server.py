"""piwheels.web.server: the record of requests, and the server's life: stopping with connections
open, a missing directory, and serving by hand from the command line."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from served_site import Site, fetch

from piwheels.web.server import serve


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
    with pytest.raises(OSError):  # noqa: PT011 (refused or reset: either way, nobody listens)
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
