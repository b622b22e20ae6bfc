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
from datetime import UTC, datetime
from pathlib import Path

import pytest
from served_site import Site, fetch

from piwheels.access_logs.lines import parse_line
from piwheels.web.request_handler import LoggedRequest
from piwheels.web.server import PipedAccessLog, serve


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


def logged(path: str = "/") -> LoggedRequest:
    return LoggedRequest(
        method="GET",
        path=path,
        status=200,
        accept=None,
        range=None,
        user_agent="pip/26.3",
        sent=5,
        client="127.0.0.1",
        request_line=f"GET {path} HTTP/1.1",
        referrer=None,
        finished=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
    )


def test_a_piped_access_log_never_holds_up_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines wait for the program (a bounded number: the rest are counted), it gets them all
    and its end of file at close; a program that has gone is said once, and nothing waits."""

    class Small(PipedAccessLog):
        BACKLOG = 3

    out = tmp_path / "got.log"
    copy = f"import shutil, sys; shutil.copyfileobj(sys.stdin, open({str(out)!r}, 'w'))"
    piped = Small([sys.executable, "-c", copy])
    for n in range(5):
        piped(logged(f"/{n}"))
    assert piped.dropped == 2
    piped.start()
    piped.close()
    assert [parse_line(line).path for line in out.read_text().splitlines()] == ["/0", "/1", "/2"]
    assert "2 requests were not logged" in caplog.text

    gone = PipedAccessLog([sys.executable, "-c", "pass"])
    gone.start()
    assert gone.process is not None
    gone.process.wait()
    for _ in range(3):
        gone(logged("/" + "x" * 100_000))  # more than a pipe holds
    gone.close(timeout=10)
    assert caplog.text.count("has gone") == 1
