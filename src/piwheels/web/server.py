"""Serves an output directory over HTTP as deploy/nginx.conf does, for the demo farm and the tests.

Static files only, GET and HEAD, one thread per connection. What it adds to a plain file server is
what pip, uv and browsers rely on:

* ``/simple/`` and ``/simple/<name>/`` choose ``index.json`` or ``index.html`` by the ``Accept``
  header (PEP 691, q-values honoured, 406 when neither is acceptable) and say ``Vary: Accept``;
* an unnormalised project name (``/simple/Foo_Bar/``) redirects to the PEP 503 form;
* single byte ranges (uv reads a wheel's METADATA by range when no ``.metadata`` file exists);
* ``logs/.../<id>.txt`` is sent from ``<id>.txt.gz`` as gzip-encoded text;
* ETag / Last-Modified with conditional requests, and the cache lifetimes of deploy/.

Nothing outside the directory is ever served: ``..`` (plain or encoded), NUL bytes and symlinks
leading out are refused and logged. :func:`serve` starts a server in a thread;
:meth:`OutputServer.stop` closes the listening socket and every open connection, then joins the
threads. ``python -m piwheels.web.server DIRECTORY [--bind ADDRESS] [--port PORT]`` serves an
output directory by hand until Ctrl-C or SIGTERM.

This module is the server's life: its threads, its connections, its record of requests (and
the access log it can pipe to a program, as the demo farm does to piw-logger), its command
line. How one request is answered is :mod:`piwheels.web.request_handler`'s, with the header
rules in :mod:`piwheels.web.http_headers` and the path checks in
:mod:`piwheels.web.request_paths`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from piwheels.web.request_handler import LoggedRequest, RequestHandler

log = logging.getLogger("piwheels.web.server")
KEPT_REQUESTS = 10_000


class OutputServer(ThreadingHTTPServer):
    """A threaded HTTP server over one output directory; see :func:`serve`."""

    # Handler threads are joined by server_close() after stop() has closed their connections, so
    # a stopped server leaves nothing running.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        directory: Path,
        address: tuple[str, int],
        access_log: Callable[[LoggedRequest], None] | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(directory))
        self.access_log = access_log  # given each request once answered
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a directory: {str(directory)!r}")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        # the latest requests, for tests and their failures: bounded, for a server left running
        self._requests: deque[LoggedRequest] = deque(maxlen=KEPT_REQUESTS)
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        super().__init__(address, RequestHandler)

    @property
    def url(self) -> str:
        """The server's root, without a trailing slash: ``http://127.0.0.1:PORT``."""
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self, timeout: float = 5.0) -> None:
        """Forget the requests logged so far, once those being answered have finished."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout)
            self._requests.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is being answered; False if that took longer than *timeout*.

        A client may have read a whole response before its handler has logged it, so a test
        that asserts on :attr:`requests` after a client exits calls this first.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def start(self) -> Self:
        """Serve from a thread of this process; :meth:`stop` ends it."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                # stop() waits up to one interval for the loop to notice.
                kwargs={"poll_interval": 0.1},
                name=f"web-server-{self.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection (idle keep-alives too) and join all threads."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # shutdown() rather than close(): the handler thread still owns the descriptor; this
            # wakes it from a blocking read or write so that it finishes by itself.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ThreadingHTTPServer hooks: track live connections so that stop() can close them.

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.discard(request)

    def begin_request(self) -> None:
        with self._lock:
            self._in_flight += 1

    def end_request(self, entry: LoggedRequest) -> None:
        if self.access_log is not None:
            self.access_log(entry)
        with self._lock:
            self._requests.append(entry)
            self._in_flight -= 1
            self._idle.notify_all()


class PipedAccessLog:
    """The server's access log in nginx's combined format, written to a program's standard
    input as Apache's piped logs are (``CustomLog "|piw-logger" combined``); the demo farm has
    piw-logger count its downloads so. Lines wait (BACKLOG at most, then they are dropped and
    counted) until :meth:`start` runs the program, and then for a thread that writes them: a
    request never waits on the program, and a program that has gone is logged once."""

    BACKLOG = 10_000

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.process: subprocess.Popen[bytes] | None = None
        self.dropped = 0
        self._lines: queue.Queue[str | None] = queue.Queue(self.BACKLOG)
        self._writer: threading.Thread | None = None

    def __call__(self, request: LoggedRequest) -> None:
        try:
            self._lines.put_nowait(request.log_line() + "\n")
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE)
        self._writer = threading.Thread(
            target=self._write, args=(self.process.stdin,), name="access-log", daemon=True
        )
        self._writer.start()

    def _write(self, stdin: IO[bytes]) -> None:
        try:
            while (line := self._lines.get()) is not None:
                stdin.write(line.encode("ascii"))  # escaped: ASCII only
                if self._lines.empty():
                    stdin.flush()
        except OSError as exc:
            log.error("the access log's program %s has gone: %s", self.command[0], exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()  # the program's end of file: it sends what it has, and ends

    def close(self, timeout: float = 30.0) -> None:
        """Give the program the lines logged so far and its end of file; wait for it to end."""
        if self.process is None or self._writer is None:
            return
        with contextlib.suppress(queue.Full):  # full: a writer that has gone
            self._lines.put(None, timeout=timeout)
        self._writer.join(timeout)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.dropped:
            log.warning(
                "%d requests were not logged: more than %d waited for %s",
                self.dropped,
                self.BACKLOG,
                self.command[0],
            )


def serve(
    directory: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    access_log: Callable[[LoggedRequest], None] | None = None,
) -> OutputServer:
    """Serve *directory* on *host*:*port* (0: any free port) from a background thread.

    Returns the running server; its ``url`` says where, and ``stop()`` (or leaving a ``with``
    block) shuts it down cleanly.
    """
    return OutputServer(directory, (host, port), access_log).start()


def main(argv: list[str] | None = None) -> int:
    """Serve an output directory until Ctrl-C or SIGTERM, logging each request."""
    parser = argparse.ArgumentParser(
        prog="python -m piwheels.web.server",
        description="Serve a piwheels output directory (piw-master's --output-path) over HTTP, "
        "as deploy/nginx.conf does: PEP 691 content negotiation, byte ranges, gzipped logs.",
    )
    parser.add_argument("directory", type=Path, help="the output directory to serve")
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address to listen on (default: %(default)s; 0.0.0.0 or :: for every one)",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="the port to listen on (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)-7s %(message)s")
    try:
        server = OutputServer(args.directory, (args.bind, args.port))
    except OSError as exc:
        log.error("cannot serve %s on %s port %d: %s", args.directory, args.bind, args.port, exc)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        log.info("serving %s on %s/ (Ctrl-C to stop)", server.root, server.url)
        while not stop.wait(1.0):
            pass
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
