"""The typed client tasks use to ask the Oracles (through Seraph) for database work.

One client per thread: ZeroMQ sockets must not be shared between threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

import zmq

from piwheels import protocols
from piwheels.abis import BuildABI
from piwheels.protocols import NO_DATA, Failure
from piwheels.protocols.messages import (
    AddRequest,
    BuildReport,
    InstalledRequest,
    LostBuild,
    PageRequest,
    PriorityRequest,
    Published,
    RemoveRequest,
    RetryCauseRequest,
    RetryRequest,
    SkipRequest,
    YankRequest,
)
from piwheels.records.builds import BuildOrigin, BuildResult, PackageVersion, QueueSnapshot
from piwheels.records.hits import HitBatch
from piwheels.records.projects import PAGE_REQUESTS_AT_ONCE, Statistics
from piwheels.transport import Socket


class DatabaseError(Exception):
    """The Oracle could not carry out a request: its :class:`Failure` says why, and of what
    kind (protocols.internal.ORACLE_ERRORS)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.kind = failure.kind


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
        """OK's data as *action* declares it (protocols.internal.oracle), or DatabaseError."""
        self._sock.send(action, data)
        if not self._sock.poll(self.timeout * 1000):
            # a REQ socket that missed its reply is stuck; start afresh for the next request
            self._sock.close()
            self._sock = self._connect()
            why = f"{action}: no reply from the database within {self.timeout}s"
            raise DatabaseError(Failure("timeout", why))
        status, result = self._sock.recv()
        answer = protocols.oracle.answer(action, status, result)
        if isinstance(answer, Failure):
            raise DatabaseError(answer)
        return answer

    def get_package_serials(self) -> dict[str, int]:
        return cast("dict[str, int]", self._call("GETPKGS"))

    def get_pypi_serial(self) -> int:
        return cast("int", self._call("GETSERIAL"))

    def set_pypi_serial(self, serial: int) -> None:
        self._call("SETSERIAL", serial)

    def remove_project(self, package: str) -> None:
        self._call("REMOVEPROJECT", package)

    def get_build_abis(self) -> list[BuildABI]:
        """The farm's ABIs, lowest first: the database's, as piw-master set them at its start."""
        return cast("list[BuildABI]", self._call("GETABIS"))

    def get_queue(self, limit: int) -> QueueSnapshot:
        return cast("QueueSnapshot", self._call("GETQUEUE", limit))

    def reserve_slave_ids(self) -> int:
        """The first of a block of SLAVE_ID_BLOCK slave ids no one was ever given."""
        return cast("int", self._call("SLAVEIDS"))

    def get_file_hashes(self, filenames: Sequence[str]) -> dict[str, str]:
        return cast("dict[str, str]", self._call("GETHASHES", list(filenames)))

    def log_build(
        self,
        slave_id: int,
        package: str,
        version: str,
        abi_tag: str,
        result: BuildResult,
        origin: BuildOrigin | None = None,
    ) -> int:
        report = BuildReport(slave_id, package, version, abi_tag, result, origin)
        return cast("int", self._call("LOGBUILD", report))

    def log_lost_build(
        self,
        slave_id: int,
        package: str,
        version: str,
        abi_tag: str,
        duration: timedelta,
        reason: str,
    ) -> int:
        lost = LostBuild(slave_id, package, version, abi_tag, duration, reason)
        return cast("int", self._call("LOSTBUILD", lost))

    def release_withheld(self, package: str, version: str) -> list[str]:
        return cast("list[str]", self._call("RELEASE", PackageVersion(package, version)))

    def requeue_given_back(self) -> list[int]:
        return cast("list[int]", self._call("REQUEUEDUE"))

    def retry_cause(self, cause: str, abi_tag: str | None) -> list[int]:
        return cast("list[int]", self._call("RETRYCAUSE", RetryCauseRequest(cause, abi_tag)))

    def debian_installed(self, package: str, abi_tag: str | None) -> list[int]:
        return cast("list[int]", self._call("DEBINSTALLED", InstalledRequest(package, abi_tag)))

    def set_priority(self, package: str, version: str | None, wanted: bool) -> None:
        self._call("SETPRIORITY", PriorityRequest(package, version, wanted))

    def get_statistics(self) -> Statistics:
        return cast("Statistics", self._call("GETSTATS"))

    def log_cursor(self, log: str) -> int:
        return cast("int", self._call("LOGCURSOR", log))

    def record_hits(self, batch: HitBatch) -> bool:
        return cast("bool", self._call("LOGHITS", batch))

    def refresh_downloads(self) -> int:
        return cast("int", self._call("RECOUNT"))

    def save_pending_pages(self, pages: Sequence[PageRequest]) -> None:
        """Keep *pages* for the next start, in as many requests as a message's bound needs (a
        stopping Secretary may hold a page for each of PyPI's projects)."""
        for start in range(0, len(pages), PAGE_REQUESTS_AT_ONCE):
            self._call("SAVEPAGES", list(pages[start : start + PAGE_REQUESTS_AT_ONCE]))

    def take_pending_pages(self) -> list[PageRequest]:
        """Every page request saved at the last stop, taken in parts (see migration 0022)."""
        taken: list[PageRequest] = []
        after = PageRequest("", "")
        while part := cast("list[PageRequest]", self._call("TAKEPAGES", after)):
            taken += part
            after = part[-1]
        return taken

    def last_published(self, after: str = "") -> list[Published]:
        """A page of the projects with files, the first after *after* (none: no more)."""
        return cast("list[Published]", self._call("PUBLISHED", after))

    def package_exists(self, package: str) -> bool:
        return cast("bool", self._call("PKGEXISTS", package))

    def version_exists(self, package: str, version: str) -> bool:
        return cast("bool", self._call("VEREXISTS", PackageVersion(package, version)))

    def remove_version(self, package: str, version: str, skip: str) -> list[str]:
        return cast("list[str]", self._call("REMOVEVER", RemoveRequest(package, version, skip)))

    def add_by_hand(self, package: str, version: str | None, skip: str) -> None:
        self._call("ADDBYHAND", AddRequest(package, version, skip))

    def set_skip(self, package: str, version: str | None, reason: str) -> None:
        self._call("SETSKIP", SkipRequest(package, version, reason))

    def set_yanked(self, package: str, version: str, yanked: bool) -> None:
        self._call("SETYANKED", YankRequest(package, version, yanked))

    def retry_failed(self, package: str, version: str, abi_tag: str | None) -> int:
        return cast("int", self._call("RETRY", RetryRequest(package, version, abi_tag)))
