"""The typed client tasks use to ask the Oracles (through Seraph) for database work.

One client per thread: ZeroMQ sockets must not be shared between threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import zmq

from piwheels import protocols
from piwheels.db.database import QueueSnapshot
from piwheels.protocols import NO_DATA
from piwheels.records.builds import BuildResult
from piwheels.transport import Socket


class DatabaseError(Exception):
    """The Oracle could not carry out a request; the message says why."""


class DbClient:
    def __init__(
        self, address: str, context: zmq.Context[Any] | None = None, *, timeout: float = 120.0
    ) -> None:
        self.address = address
        self.context = context
        self.timeout = timeout
        self._sock = self._connect()

    def _connect(self) -> Socket:
        return Socket(zmq.REQ, reversed(protocols.oracle), context=self.context).connect(
            self.address
        )

    def close(self) -> None:
        self._sock.close()

    def _call(self, action: str, data: Any = NO_DATA) -> Any:
        self._sock.send(action, data)
        if not self._sock.poll(self.timeout * 1000):
            # a REQ socket that missed its reply is stuck; start afresh for the next request
            self._sock.close()
            self._sock = self._connect()
            raise DatabaseError(f"{action}: no reply from the database within {self.timeout}s")
        status, result = self._sock.recv()
        if status == "ERROR":
            raise DatabaseError(result)
        return result

    def get_package_serials(self) -> dict[str, int]:
        return dict(self._call("GETPKGS"))

    def get_pypi_serial(self) -> int:
        return int(self._call("GETSERIAL"))

    def set_pypi_serial(self, serial: int) -> None:
        self._call("SETSERIAL", serial)

    def remove_project(self, package: str) -> None:
        self._call("REMOVEPROJECT", package)

    def get_build_abis(self) -> list[str]:
        return list(self._call("GETABIS"))

    def get_queue(self, limit: int) -> QueueSnapshot:
        heads, lengths, last_build = self._call("GETQUEUE", limit)
        return QueueSnapshot(
            {abi: [tuple(entry) for entry in entries] for abi, entries in heads.items()},
            lengths,
            int(last_build),
        )

    def reserve_slave_ids(self) -> int:
        """The first of a block of SLAVE_ID_BLOCK slave ids no one was ever given."""
        return int(self._call("SLAVEIDS"))

    def get_file_hashes(self, filenames: Sequence[str]) -> dict[str, str]:
        return dict(self._call("GETHASHES", list(filenames)))

    def log_build(
        self, slave_id: int, package: str, version: str, abi_tag: str, result: BuildResult
    ) -> int:
        return int(self._call("LOGBUILD", (slave_id, package, version, abi_tag, result)))

    def log_lost_build(
        self,
        slave_id: int,
        package: str,
        version: str,
        abi_tag: str,
        duration: timedelta,
        reason: str,
    ) -> int:
        return int(self._call("LOSTBUILD", (slave_id, package, version, abi_tag, duration, reason)))

    def requeue_given_back(self) -> list[int]:
        return [int(build_id) for build_id in self._call("REQUEUEDUE")]

    def retry_cause(self, cause: str, abi_tag: str | None) -> list[int]:
        return [int(build_id) for build_id in self._call("RETRYCAUSE", (cause, abi_tag))]

    def debian_installed(self, package: str, abi_tag: str | None) -> list[int]:
        return [int(build_id) for build_id in self._call("DEBINSTALLED", (package, abi_tag))]

    def set_priority(self, package: str, version: str | None, wanted: bool) -> None:
        self._call("SETPRIORITY", (package, version, wanted))

    def get_statistics(self) -> dict[str, Any]:
        return dict(self._call("GETSTATS"))

    def save_pending_pages(self, pages: Sequence[tuple[str, str]]) -> None:
        self._call("SAVEPAGES", [list(page) for page in pages])

    def take_pending_pages(self) -> list[tuple[str, str]]:
        return [(kind, package) for kind, package in self._call("TAKEPAGES")]

    def last_published(self) -> list[tuple[str, float]]:
        return [(package, float(when)) for package, when in self._call("PUBLISHED")]

    def package_exists(self, package: str) -> bool:
        return bool(self._call("PKGEXISTS", package))

    def version_exists(self, package: str, version: str) -> bool:
        return bool(self._call("VEREXISTS", (package, version)))

    def remove_version(self, package: str, version: str, skip: str) -> list[str]:
        return [str(name) for name in self._call("REMOVEVER", (package, version, skip))]

    def add_by_hand(self, package: str, version: str | None, skip: str) -> None:
        self._call("ADDBYHAND", (package, version, skip))

    def set_skip(self, package: str, version: str | None, reason: str) -> None:
        self._call("SETSKIP", (package, version, reason))

    def set_yanked(self, package: str, version: str, yanked: bool) -> None:
        self._call("SETYANKED", (package, version, yanked))

    def retry_failed(self, package: str, version: str, abi_tag: str | None) -> int:
        return int(self._call("RETRY", (package, version, abi_tag)))
