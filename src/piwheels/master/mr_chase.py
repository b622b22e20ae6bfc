"""Mr. Chase: the master's end of piw-import, piw-remove, piw-rebuild and piw-add.

A cut-down Slave Driver on the import queue (ROUTER; the tools use REQ). An import is judged
like a slave's build (files must be wheels of the package and version named), transferred with
the File Juggler protocol, and recorded only when every file is verified. Imports run one at a
time: the File Juggler expects them under the slave id 0, which no slave is ever given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from packaging.utils import canonicalize_name

from piwheels import protocols, provenance
from piwheels.builder_keys import fingerprint
from piwheels.failures import Cause
from piwheels.master_support.builder_trust import load_trust
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.slaves import check_files
from piwheels.master_support.task import Task, describe_error
from piwheels.master_support.web_requests import PageRequests, with_output_disk
from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA, Failure
from piwheels.protocols.messages import (
    AddRequest,
    Discard,
    Expect,
    ImportRequest,
    InstalledRequest,
    PriorityRequest,
    RebuildRequest,
    RemoveRequest,
    RetryCauseRequest,
    RetryRequest,
    SkipRequest,
    Withhold,
    YankRequest,
)
from piwheels.records.builds import BuildOrigin, BuildResult, FileState, PackageVersion

IMPORTER_ID = 0
ABANDONED_AFTER = 300.0  # seconds of silence after which another tool may take over
MAX_SEND_ATTEMPTS = 3
MAX_REQUEST = 32 * 1024 * 1024  # an IMPORT carries a build's log, as a slave's BUILT does
Reply = tuple[str, Any]


class Refused(Exception):
    """A request that cannot be carried out; the message goes back to the tool as ERROR."""


@dataclass
class Import:
    address: bytes
    package: str
    version: str
    abi_tag: str
    result: BuildResult
    to_send: list[FileState]
    peer: str = ""  # the tool's IP address, where it has one
    fetched: list[str] = field(default_factory=list)  # files verified on disk so far
    attempts: int = 0
    last_heard: float = field(default_factory=time.monotonic)


class MrChase(Task):
    name = "Mr. Chase"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.pages = PageRequests.connect(self, config.web_queue)
        # piw-import sends its files with the master's own key, which it reads as the master's
        # user (see builder_trust.py); without keys the file queue is plain
        trust = load_trust(config.key_dir)
        self.importer_key = "" if trust is None else trust.public_key
        self.queue = self.socket(
            zmq.ROUTER,
            protocols.mr_chase,
            max_message_size=MAX_REQUEST,
            peer_addresses=True,
        )
        # A tool has one request unanswered at a time: more queued from one peer is a flood.
        self.queue.zsock.setsockopt(zmq.RCVHWM, 4)
        self.queue.bind(config.import_queue)
        self.fs = self.socket(zmq.REQ, reversed(protocols.file_juggler_control))
        self.fs.connect(config.fs_queue)
        self.register(self.queue, self.handle_request)
        self.importing: Import | None = None
        self.handlers: dict[str, Callable[[bytes, Any], Reply]] = {
            "IMPORT": self.do_import,
            "SENT": self.do_sent,
            "REMOVE": self.do_remove,
            "RELEASE": self.do_release,
            "REBUILD": self.do_rebuild,
            "ADD": self.do_add,
            "SKIP": self.do_skip,
            "YANK": self.do_yank,
            "RETRY": self.do_retry,
            "PRIORITY": self.do_priority,
            "RETRYCAUSE": self.do_retry_cause,
            "INSTALLED": self.do_installed,
        }

    def handle_request(self) -> None:
        try:
            address, action, data = self.queue.recv_from()
        except ProtocolError as exc:
            self.log.error("refused a request: %s", exc)
            if exc.address is not None:
                self.queue.send_to(exc.address, "ERROR", f"malformed request: {exc}")
            return
        try:
            reply = self.handlers[action](address, data)
        except (Refused, DatabaseError) as exc:
            self.log.warning("%s refused: %s", action, exc)
            reply = ("ERROR", str(exc))
        except Exception as exc:  # one tool's request must never end the task
            why = describe_error(exc)
            self.log.error("refused %s from %s: %s", action, self.queue.peer or "a local tool", why)
            reply = ("ERROR", f"{action} failed: {why}")
        self.queue.send_to(address, *reply)

    # -- importing -----------------------------------------------------------------------------

    def do_import(self, address: bytes, data: ImportRequest) -> Reply:
        package, version, abi_tag = data.package, data.version, data.abi_tag
        current = self.importing
        if current is not None and current.address != address:
            if time.monotonic() - current.last_heard < ABANDONED_AFTER:
                raise Refused("another import is in progress; try again when it has finished")
            self.log.warning("forgetting an import of %s abandoned by its tool", current.package)
            self._ask_fs("FORGET", IMPORTER_ID)
            self._discard(current)
        package = canonicalize_name(package)
        if not self.db.version_exists(package, version):
            raise Refused(f"no such version: {package} {version} (piw-add it first)")
        abis = [abi.abi_tag for abi in self.db.get_build_abis()]
        abi_tag = abi_tag or abis[0]
        if abi_tag not in abis:
            raise Refused(f"{abi_tag} is not one of this farm's ABIs ({', '.join(abis)})")
        result, refusals = check_files(
            package, version, BuildResult(data.status, data.duration, data.output, data.files)
        )
        if refusals:
            raise Refused("; ".join(refusals))
        published = self.db.get_file_hashes([f.filename for f in result.files])
        clashes = [
            f.filename for f in result.files if published.get(f.filename, f.filehash) != f.filehash
        ]
        if clashes:
            raise Refused(f"already published with different bytes: {', '.join(clashes)}")
        to_send = [f for f in result.files if f.filename not in published]
        self.importing = Import(
            address, package, version, abi_tag, result, to_send, peer=self.queue.peer
        )
        self.log.info("importing %s %s for %s (%d files)", package, version, abi_tag, len(to_send))
        return self._next_file() if to_send else self._record()

    def do_sent(self, address: bytes, _: object) -> Reply:
        job = self.importing
        if job is None or job.address != address or not job.to_send:
            raise Refused("SENT without a file being sent")
        job.last_heard = time.monotonic()
        status, detail = self._ask_fs("VERIFY", IMPORTER_ID)
        if status == "OK":
            job.fetched.append(job.to_send.pop(0).filename)
            job.attempts = 0
            return self._next_file() if job.to_send else self._record()
        if job.attempts >= MAX_SEND_ATTEMPTS:
            self.importing = None
            self._discard(job)
            raise Refused(f"{job.to_send[0].filename} did not arrive intact: {detail}")
        return self._next_file()

    def _next_file(self) -> Reply:
        job = self.importing
        assert job is not None
        file = job.to_send[0]
        job.attempts += 1
        expect = Expect(IMPORTER_ID, job.package, file, job.address, job.peer, self.importer_key)
        status, detail = self._ask_fs("EXPECT", expect)
        if status != "OK":
            self.importing = None
            self._discard(job)
            raise Refused(f"cannot receive {file.filename}: {detail}")
        return "SEND", file.filename

    def _record(self) -> Reply:
        job = self.importing
        assert job is not None
        self.importing = None
        try:
            build_id = self.db.log_build(
                IMPORTER_ID, job.package, job.version, job.abi_tag, job.result, self._origin()
            )
        except DatabaseError:
            self._discard(job)
            raise
        self.log.info("imported %s %s as build %d", job.package, job.version, build_id)
        self.pages.project(job.package)
        return "DONE", NO_DATA

    def _origin(self) -> BuildOrigin:
        """An import's builder, for its provenance: the operator, by the master's own key
        (piw-import's), the machine it was built on unknown."""
        key = fingerprint(self.importer_key.encode("ascii")) if self.importer_key else ""
        return BuildOrigin(key, "piw-import", "", "", "", "")

    def _discard(self, job: Import) -> None:
        """Delete the files of an import that was not recorded, unless the database lists
        them: nothing stays under ``simple/`` that it does not."""
        if not job.fetched:
            return
        try:
            published = self.db.get_file_hashes(job.fetched)
        except DatabaseError as exc:
            self.log.error("%s left on disk: %s", ", ".join(job.fetched), exc)
            return
        gone = [name for name in job.fetched if name not in published]
        if gone:
            self._ask_fs("DISCARD", Discard(job.package, gone))

    def _ask_fs(self, action: str, data: Any) -> tuple[str, Any]:
        """The File Juggler's answer: ("OK", the reply *action* declares) or ("ERROR", a
        Failure)."""
        self.fs.send(action, data)
        status, result = self.fs.recv()
        answer = protocols.file_juggler_control.answer(action, status, result)
        return ("ERROR" if isinstance(answer, Failure) else "OK"), answer

    # -- removing, rebuilding and repairs ------------------------------------------------------

    def do_remove(self, _: bytes, data: RemoveRequest) -> Reply:
        package, version, skip = canonicalize_name(data.package), data.version, data.skip
        for filename in self.db.remove_version(package, version, skip):
            self._unpublish(package, filename)
        self.log.info("removed %s %s%s", package, version, f" (skip: {skip})" if skip else "")
        self.pages.project(package)
        return "DONE", NO_DATA

    def _unpublish(self, package: str, filename: str) -> None:
        """Delete a removed file and what lies beside it, served or withheld (a file taken
        out of the index by a cross-check or PyPI's removal waits in the withheld directory)."""
        names = (filename, f"{filename}.metadata", f"{filename}{provenance.SUFFIX}")
        served = Path(self.config.output_path) / "simple" / package
        for directory in (served, self.config.withheld_dir / package):
            for path in (directory / name for name in names):
                if path.parent != directory:  # names come from our own database; be sure
                    continue
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    self.log.error("cannot delete %s: %s", path, exc)

    def do_release(self, _: bytes, data: PackageVersion) -> Reply:
        """The operator's word that a version's withheld wheels are to be published after all."""
        package, version = canonicalize_name(data.package), data.version
        filenames = self.db.release_withheld(package, version)
        if not filenames:
            raise Refused(f"no withheld wheels of {package} {version}")
        status, detail = self._ask_fs("RELEASE", Withhold(package, filenames))
        if status != "OK":
            raise Refused(f"cannot put {', '.join(filenames)} back: {detail}")
        self.log.warning("released %s at the operator's word", ", ".join(filenames))
        self.pages.project(package)
        return "DONE", NO_DATA

    def do_rebuild(self, _: bytes, data: RebuildRequest) -> Reply:
        part, package = data.part, data.package
        if part == "HOME":
            stats = with_output_disk(self.db.get_statistics(), self.config.output_path)
            self.pages.send("HOME", stats)
        elif part in ("SEARCH", "SITE"):
            self.pages.send(part)
        elif part in ("PROJECT", "BOTH"):
            if package is not None:
                package = canonicalize_name(package)
                if not self.db.package_exists(package):
                    raise Refused(f"no such package: {package}")
                names = [package]
            else:
                names = sorted(canonicalize_name(name) for name in self.db.get_package_serials())
            for name in names:
                self.pages.project(name, index=part == "BOTH")
            self.log.info("asked for %s pages of %d packages", part.lower(), len(names))
        else:
            raise Refused(f"cannot rebuild {part!r}: say HOME, SEARCH, SITE, PROJECT or BOTH")
        return "DONE", NO_DATA

    def do_add(self, _: bytes, data: AddRequest) -> Reply:
        package = canonicalize_name(data.package)
        self.db.add_by_hand(package, data.version, data.skip)
        self.pages.project(package)
        return "DONE", NO_DATA

    def do_skip(self, _: bytes, data: SkipRequest) -> Reply:
        package = canonicalize_name(data.package)
        self.db.set_skip(package, data.version, data.reason)
        self.pages.project(package, index=False)
        return "DONE", NO_DATA

    def do_yank(self, _: bytes, data: YankRequest) -> Reply:
        package = canonicalize_name(data.package)
        self.db.set_yanked(package, data.version, data.yanked)
        self.pages.project(package)
        return "DONE", NO_DATA

    def do_retry(self, _: bytes, data: RetryRequest) -> Reply:
        package, version = canonicalize_name(data.package), data.version
        forgotten = self.db.retry_failed(package, version, data.abi_tag)
        if not forgotten:
            raise Refused(f"no failed build of {package} {version} to retry")
        self.pages.project(package, index=False)
        return "DONE", NO_DATA

    def do_priority(self, _: bytes, data: PriorityRequest) -> Reply:
        package, version, wanted = canonicalize_name(data.package), data.version, data.wanted
        self.db.set_priority(package, version, wanted)
        what = package if version is None else f"{package} {version}"
        self.log.info("%s %s", what, "put first in the queue" if wanted else "back in its place")
        return "DONE", NO_DATA

    def do_retry_cause(self, _: bytes, data: RetryCauseRequest) -> Reply:
        cause = data.cause
        if cause not in set(Cause):
            raise Refused(f"no such cause: {cause} (one of {', '.join(Cause)})")
        requeued = self.db.retry_cause(cause, data.abi_tag)
        self.log.info("retrying %d builds that failed for %s", len(requeued), cause)
        return "DONE", NO_DATA

    def do_installed(self, _: bytes, data: InstalledRequest) -> Reply:
        package = data.debian_package
        requeued = self.db.debian_installed(package, data.abi_tag)
        self.log.info("%s installed: %d builds waiting for it requeued", package, len(requeued))
        return "DONE", NO_DATA

    def close(self) -> None:
        self.db.close()
        super().close()
