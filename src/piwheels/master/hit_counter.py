"""The Hit Counter: records what piw-logger finds in the web server's access logs.

piw-logger asks where a log's reading resumes (CURSOR), then sends what the log held a batch at
a time (HITS); each batch is recorded through the Oracle in one transaction with the log's
cursor moved past it, so a batch sent twice (its answer lost, the tool restarted) is counted
once. The downloaded projects' pages are rewritten with their new figures, each at most once
per ``download_pages_interval``; every ``downloads_interval`` the last 30 days are counted
again, as days pass, which moves projects in the build queue (migration 0017).
"""

from __future__ import annotations

import re
import time
from typing import Any

import zmq
from packaging.utils import canonicalize_name

from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.task import Task, describe_error
from piwheels.master_support.web_requests import PageRequests
from piwheels.message_codec import ProtocolError
from piwheels.protocols import Failure
from piwheels.records.hits import HIT_KINDS, HitBatch

MAX_REQUEST = 4 * 1024 * 1024  # a HITS of 5,000 downloads is ~600 KB
LOG_IDENTITY = re.compile(r"[0-9a-f]{64}")
MAX_NAME = 200  # a package name, as the schema holds it
MAX_FILENAME = 255
MAX_FIELD = 100  # each of a client's fields


def batch_problem(batch: HitBatch) -> str | None:
    """Why the database would refuse *batch* (None: it would not), said before it is sent."""
    if not LOG_IDENTITY.fullmatch(batch.log):
        return "a log is named by the sha256 of its first line (64 hex digits)"
    if not 0 <= batch.start <= batch.end or min(batch.lines, batch.bad_lines) < 0:
        return "a batch's offsets and counts are positive, and it ends after it starts"
    if any(len(field) > MAX_FIELD for client in batch.clients for field in client):
        return f"a client's fields are at most {MAX_FIELD} characters"
    projects = {d.project for d in batch.downloads} | {h.project for h in batch.hits}
    for project in projects:
        if len(project) > MAX_NAME or canonicalize_name(project) != project or not project:
            return f"not a canonical project name: {project[:MAX_NAME]!r}"
    for download in batch.downloads:
        if not 0 <= download.client < len(batch.clients):
            return "a download names a client the batch does not describe"
        if not download.filename or len(download.filename) > MAX_FILENAME:
            return f"a file name is 1 to {MAX_FILENAME} characters"
    for hits in batch.hits:
        if hits.kind not in HIT_KINDS or hits.kind == "download" or hits.hits < 0:
            return "daily hits are searches, project pages or JSON, never negative"
    return None


class HitCounter(Task):
    name = "Hit Counter"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.pages = PageRequests.connect(self, config.web_queue)
        self.queue = self.socket(zmq.REP, protocols.hit_counter, max_message_size=MAX_REQUEST)
        self.queue.bind(config.log_queue)
        self.register(self.queue, self.handle_request)
        self.every(config.downloads_interval, self.recount)
        self.pages_asked: dict[str, float] = {}  # project -> when its page was last asked for

    def handle_request(self) -> None:
        try:
            action, data = self.queue.recv()
        except ProtocolError as exc:
            self.log.error("refused a request: %s", exc)
            self.queue.send("ERROR", Failure("malformed", f"malformed request: {exc}"))
            return
        try:
            if action == "CURSOR":
                self.queue.send("OK", self.cursor(data))
            else:  # HITS
                self.record(data)
                self.queue.send("OK", None)
        except Refused as exc:
            self.log.error("refused %s: %s", action, exc.failure.message)
            self.queue.send("ERROR", exc.failure)
        except DatabaseError as exc:
            self.log.error("cannot record %s: %s", action, exc)
            kind = "unavailable" if exc.kind in ("unavailable", "timeout") else "refused"
            self.queue.send("ERROR", Failure(kind, str(exc)))
        except Exception as exc:  # a request that trips us up must not end the task
            self.log.error("%s failed: %s", action, describe_error(exc))
            self.queue.send("ERROR", Failure("failed", f"{action} failed"))

    def cursor(self, log: str) -> int:
        if not LOG_IDENTITY.fullmatch(log):
            raise Refused("refused", "a log is named by the sha256 of its first line")
        return self.db.log_cursor(log)

    def record(self, batch: HitBatch) -> None:
        problem = batch_problem(batch)
        if problem is not None:
            raise Refused("refused", problem)
        if not self.db.record_hits(batch):
            raise Refused("stale", f"log {batch.log[:12]} is not read to {batch.start}")
        if batch.downloads or batch.hits:
            self.log.info(
                "log %s to byte %d: downloads %d, other hits %d, bad lines %d",
                batch.log[:12],
                batch.end,
                len(batch.downloads),
                sum(h.hits for h in batch.hits),
                batch.bad_lines,
            )
        self.ask_pages({d.project for d in batch.downloads})

    def ask_pages(self, projects: set[str]) -> None:
        """Have the pages of *projects* show their new figures, each at most once a while."""
        now = time.monotonic()
        interval = self.config.download_pages_interval
        for project in sorted(projects):
            asked = self.pages_asked.get(project)
            if asked is None or now - asked >= interval:
                self.pages_asked[project] = now
                self.pages.send("PROJECT", project)

    def recount(self) -> None:
        try:
            moved = self.db.refresh_downloads()
        except DatabaseError as exc:
            self.log.error("cannot count the last 30 days' downloads: %s", exc)
            return
        if moved:
            self.log.info("%d projects moved in the build queue by their downloads", moved)
        # forget what no longer holds a page back, so the map stays the size of a while's work
        cutoff = time.monotonic() - self.config.download_pages_interval
        self.pages_asked = {p: t for p, t in self.pages_asked.items() if t > cutoff}

    def close(self) -> None:
        self.db.close()
        super().close()


class Refused(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.failure = Failure(kind, message)
