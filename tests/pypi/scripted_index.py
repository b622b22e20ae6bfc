"""Servers on 127.0.0.1 that answer exactly what a test scripts, and the documents they send.

LocalPyPI (tests/pypi_index.py) plays PyPI for the normal cases. For the answers it never gives
(bad JSON, a 500, a stale header, HTML only, a server that stalls), a test starts one of these
with the answer it wants: nothing in urllib is patched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from piwheels.pypi.client import PyPIClient

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


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
