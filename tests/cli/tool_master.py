"""A master the tests of the operators' tools play by hand (see conftest.py), and the wheels
they import: Mr. Chase's and the File Juggler's ROUTERs on ipc sockets in a temporary
directory, each message the tool sends checked as it is on the wire."""

from __future__ import annotations

import hashlib
import io
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq

from piwheels import protocols
from piwheels.builder_keys import MASTER_KEY, key_pair, serve_securely
from piwheels.protocols import NO_DATA
from piwheels.transport import Socket

BIN = Path(sys.executable).parent
WAIT = 10.0  # seconds to wait for a message that should come promptly
HOST_NOTE = f"imported by piw-import from {socket.gethostname()}"


class FakeMaster:
    """Mr. Chase's and the File Juggler's sockets, driven step by step by a test."""

    def __init__(self, context: zmq.Context[Any], directory: Path) -> None:
        self.import_queue = f"ipc://{directory}/import"
        self.file_queue = f"ipc://{directory}/files"
        self.chase = Socket(zmq.ROUTER, protocols.mr_chase, context=context)
        self.chase.bind(self.import_queue)
        self.juggler = Socket(zmq.ROUTER, protocols.file_juggler, context=context)
        # as the master's: a CurveZMQ server with the master's key, which piw-import reads
        self.key_dir = directory / "keys"
        serve_securely(self.juggler.zsock, key_pair(self.key_dir, MASTER_KEY)[0])
        self.juggler.bind(self.file_queue)
        self.address = b""
        self.file_address = b""

    def import_options(self) -> list[str]:
        """piw-import's options for where it sends files, and with which key."""
        return ["--file-queue", self.file_queue, "--key-dir", str(self.key_dir)]

    def options(self, timeout: float = WAIT) -> list[str]:
        return ["--import-queue", self.import_queue, "--timeout", str(timeout)]

    def expect(self, action: str, timeout: float = WAIT) -> Any:
        """The data of the tool's next request, which must be *action*."""
        assert self.chase.poll(timeout * 1000), f"no {action} within {timeout}s"
        self.address, got, data = self.chase.recv_from()
        assert got == action, f"expected {action}, got {got} {data!r}"
        return data

    def reply(self, action: str, data: Any = NO_DATA) -> None:
        self.chase.send_to(self.address, action, data)

    def heard_nothing(self, wait: float = 0.3) -> bool:
        return not self.chase.poll(wait * 1000)

    def fetch_file(self, size: int, chunk: int, *, beyond_end: bool = False) -> bytes:
        """Play the File Juggler for one file: HELLO, every FETCH at once, chunks in any order."""
        assert self.juggler.poll(WAIT * 1000), "no HELLO on the file queue"
        self.file_address, action, slave_id = self.juggler.recv_from()
        assert (action, slave_id) == ("HELLO", 0)
        if beyond_end:  # a FETCH past the end must be refused, not answered
            self.juggler.send_to(self.file_address, "FETCH", (size - 1, 10))
        offsets = list(range(0, size, chunk))
        for offset in reversed(offsets):
            self.juggler.send_to(self.file_address, "FETCH", (offset, min(chunk, size - offset)))
        received: dict[int, bytes] = {}
        while len(received) < len(offsets):
            assert self.juggler.poll(WAIT * 1000), "a CHUNK never came"
            _, action, (offset, data) = self.juggler.recv_from()
            assert action == "CHUNK"
            assert offset not in received
            received[offset] = data
        self.juggler.send_to(self.file_address, "DONE")
        assert not self.juggler.poll(100), "the tool sent more than it was asked for"
        return b"".join(received[offset] for offset in offsets)

    def close(self) -> None:
        self.chase.close()
        self.juggler.close()


class ToolThread:
    """A tool's ``main(argv)`` running in a thread, so the test can play the master meanwhile."""

    def __init__(self, main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
        self.status: int | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(main, argv), daemon=True)
        self.thread.start()

    def _run(self, main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
        self.status = main(argv)

    def join(self, timeout: float = WAIT) -> int | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the tool did not finish"
        return self.status


class FakeTerminal(io.StringIO):
    """Standard input on a terminal, where the operator types *answer*."""

    def isatty(self) -> bool:
        return True


def write_wheel(
    directory: Path,
    name: str,
    version: str,
    tag: str = "py3-none-any",
    *,
    meta_name: str | None = None,
    meta_version: str | None = None,
    extra: Sequence[str] = (),
    payload: bytes = b"",
) -> Path:
    """A small real wheel; METADATA may disagree with the filename when a test needs it to."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {meta_name or name}",
        f"Version: {meta_version or version}",
        *extra,
    ]
    path = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(f"{dist}.py", "VALUE = 1\n")
        wheel.writestr(f"{dist}/data.bin", payload, compress_type=zipfile.ZIP_STORED)
        wheel.writestr(f"{info}/METADATA", "\n".join(metadata) + "\n\n")
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
