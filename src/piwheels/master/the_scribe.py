"""The Scribe: writes the web output — the index, project pages, logs, home, search, the FAQ,
the 404 page and the sitemap.

Every file is written atomically (a temporary file renamed into place), so a reader never sees
half a page. A page that cannot be written (a full disk, a wheel that will not open) is logged
and skipped; the Scribe carries on with the next request.

Most of the work happens in child processes, because anything done in the master's interpreter
holds the lock every other task needs: at PyPI's scale the project pages alone (a large read,
four pages and the build logs for every recorded build) took half of the master's time and
starved the Slave Driver. A long-lived child (:mod:`piwheels.web.project_writer`) writes the
project pages; the Scribe passes it requests, a few at a time, and logs what it says. The rest
of the requests wait in the Secretary, where repeats merge, rather than in a queue here. The
pages that list every project (the index root, the search index and the sitemap) are written
by short-lived children (:mod:`piwheels.web.bulk`). Only small pages are still written here: the
home page, and at the start the search page, the FAQ, the 404 page and the static files.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import zmq

from piwheels import protocols
from piwheels.master_support.children import ChildJob, ChildProcess
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.task import Task
from piwheels.message_codec import ProtocolError
from piwheels.protocols import messages
from piwheels.records.projects import Statistics
from piwheels.web import bulk, pages, site_pages
from piwheels.web.layout import NOT_FOUND_PAGE
from piwheels.web.writer import write_atomic

# Project requests passed to the writer child and not yet done. Enough to keep it busy between
# two reads of its output; every request beyond waits in the Secretary, merging with repeats.
WRITER_BACKLOG = 4
# Requests queued in the inbox while the writer is full; the Secretary holds (and merges) the rest.
INBOX_BACKLOG = 8
# A writer that dies is started again, but not more often than this (seconds).
WRITER_RESTART_GAP = 1.0
# A request the writer could not do for want of the database is made again after this long.
RETRY_AFTER = 5.0
# A request the writer died on this many times is given up (logged): one project that kills it
# must not stop every other project's pages.
WRITER_TRIES = 3
# At a stop, the writer has this long to finish what it was given, then SIGTERM, then SIGKILL.
WRITER_STOP_GRACE = 3.0

# Writing the root may take at most this share of the time: at PyPI's scale its query and
# rendering take a few seconds (1.7 s for the query with migration 0006; 25-40 s before it),
# so there it is rewritten every half minute or so rather than every root_interval.
ROOT_DUTY = 0.1
# A project that gets its first wheel is in the search index within SEARCH_GAP, or four times
# the search job's last run where that is longer (at PyPI's scale); Big Brother asks for it now
# and then besides.
SEARCH_GAP = 30.0
SEARCH_DUTY = 0.25
# The sitemap is for search engines, which read it a few times a day: written at the start, then
# at most hourly while projects' pages change (PyPI's 600,000 projects take about 3 s of CPU to
# write, besides the query).
SITEMAP_GAP = 3600.0
SITEMAP_DUTY = 0.05


@dataclass
class WriterJob:
    """A BOTH or PROJECT request handed to the writer child."""

    action: str
    package: str
    deaths: int = 0  # how many times the writer died while this was the one it was writing


class TheScribe(Task):
    name = "Scribe"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)  # to save requests at a stop
        self.output = Path(config.output_path)
        self.simple = self.output / "simple"
        self.inbox = self.socket(zmq.PULL, protocols.web)
        self.inbox.zsock.setsockopt(zmq.RCVHWM, INBOX_BACKLOG)
        self.inbox.bind(config.scribe_queue)
        self.register(self.inbox, self.handle_request)
        self.child_env = {**os.environ, bulk.DSN_VARIABLE: config.dsn}
        command = [sys.executable, "-m", "piwheels.web.bulk"]
        self.root = ChildJob(
            "the index root",
            [*command, "root", str(self.output)],
            self.child_env,
            self.log,
            min_gap=config.root_interval,
            duty=ROOT_DUTY,
        )
        self.search = ChildJob(
            "the search index",
            [*command, "search", str(self.output)],
            self.child_env,
            self.log,
            min_gap=SEARCH_GAP,
            duty=SEARCH_DUTY,
        )
        self.sitemap = ChildJob(
            "the sitemap",
            [*command, "sitemap", str(self.output), "--public-url", config.public_url],
            self.child_env,
            self.log,
            min_gap=SITEMAP_GAP,
            duty=SITEMAP_DUTY,
        )
        self.writer = ChildProcess(
            self,
            "project writer",
            [
                sys.executable,
                "-m",
                "piwheels.web.project_writer",
                str(self.output),
                "--public-url",
                config.public_url,
                # each published wheel's provenance is signed with the master's key
                *(["--key-dir", str(config.key_dir)] if config.key_dir is not None else []),
            ],
            protocols.page_writer,
            on_message=self._heard,
            on_end=self._writer_ended,
            env=self.child_env,
        )
        self.writer_wanted = False  # from once() until close()
        self.in_flight: deque[WriterJob] = deque()
        self.retries: dict[tuple[str, str], float] = {}  # (action, package) -> when to retry
        self.every(1.0, self.root.check)
        self.every(1.0, self.search.check)
        self.every(1.0, self.sitemap.check)
        self.every(WRITER_RESTART_GAP, self.check_writer)

    def once(self) -> None:
        self.simple.mkdir(parents=True, exist_ok=True)
        self._copy_static()
        self._attempt("the search page", self.write_search_page)
        self._attempt("the FAQ and the 404 page", self.write_site_pages)
        self.writer_wanted = True
        self._start_writer()
        self.search.request()
        self.root.request()
        self.sitemap.request()

    def handle_request(self) -> None:
        if len(self.in_flight) >= WRITER_BACKLOG:
            self.mute(self.inbox)  # (muted already, normally; see _forward)
            return
        try:
            action, data = self.inbox.recv()
        except ProtocolError as exc:
            self.log.error("bad request: %s", exc)
            return
        if action in ("BOTH", "PROJECT"):
            self._forward(WriterJob(action, data))
        elif action == "HOME":
            self._attempt("the home page", self.write_home, data)
        elif action == "SITE":  # an operator's piw-rebuild: at once
            self._attempt("the FAQ and the 404 page", self.write_site_pages)
            self.root.request(unspaced=True)
            self.sitemap.request(unspaced=True)
        else:  # SEARCH
            self.search.request()

    def _attempt(self, what: str, job: Any, *args: Any) -> None:
        """Run one writing job; a failure is logged and the Scribe carries on."""
        try:
            job(*args)
        except OSError as exc:
            self.log.error("cannot write %s: %s", what, exc)
        except Exception:
            # A page that cannot be made (a bug, data we did not foresee) must not stop the
            # farm's builds: the traceback goes to the log and the next page is tried.
            self.log.exception("cannot write %s", what)

    # -- the project writer --------------------------------------------------------------------

    def _forward(self, request: WriterJob) -> None:
        self.in_flight.append(request)
        if len(self.in_flight) >= WRITER_BACKLOG:
            self.mute(self.inbox)  # the rest wait in the Secretary
        # if it has died (or is not running), the request is sent when it starts again
        self.writer.send(request.action, request.package)

    def _start_writer(self) -> None:
        if self.writer.start():
            for request in self.in_flight:
                self.writer.send(request.action, request.package)
        # else: tried again by check_writer

    def check_writer(self) -> None:
        """Start a new writer once the gap since the last start has passed; hand it again the
        requests it could not write for want of the database."""
        now = time.monotonic()
        gap_passed = now - self.writer.started >= WRITER_RESTART_GAP
        if self.writer_wanted and not self.writer.running and gap_passed:
            self._start_writer()
        for key, due in list(self.retries.items()):
            if due > now or len(self.in_flight) >= WRITER_BACKLOG:
                continue
            del self.retries[key]
            if not any((r.action, r.package) == key for r in self.in_flight):
                self._forward(WriterJob(*key))

    def _heard(self, action: str, data: Any) -> None:
        if action == "DONE":
            self._done(data.package, new=data.new, retry=data.retry)
        else:  # LOG
            self.log.log(data.level, "%s", data.message)

    def _done(self, package: str, *, new: bool, retry: bool) -> None:
        for request in self.in_flight:
            if request.package == package:
                self.in_flight.remove(request)
                if retry:  # the database was away: asked again when it may be back
                    self.retries[request.action, package] = time.monotonic() + RETRY_AFTER
                break
        else:
            self.log.warning("the project writer did %r, which it was not asked for", package)
        if new and self.writer_wanted:
            # a project new to the index (at a stop: both rewritten at the start)
            self.root.request()
            self.search.request()
        if self.writer_wanted:
            self.sitemap.request()  # the project's lastmod, or the project, is new
        if len(self.in_flight) < WRITER_BACKLOG:
            self.unmute(self.inbox)

    def _writer_ended(self, status: int | None) -> None:
        """The writer's output has ended: start another unless stopping."""
        if not self.writer_wanted:
            return
        self.log.error(
            "the project writer ended (status %s) with %d requests in hand; restarting it",
            status,
            len(self.in_flight),
        )
        if self.in_flight:
            request = self.in_flight[0]  # the one it was writing, if it got that far
            request.deaths += 1
            if request.deaths >= WRITER_TRIES:
                self.in_flight.popleft()
                self.log.error(
                    "cannot write the pages of %s: the project writer died on them %d times",
                    request.package,
                    request.deaths,
                )
                self.unmute(self.inbox)
        self.check_writer()

    def _stop_writer(self) -> None:
        """Let the writer finish what it was given (for a while), then end it."""
        self.writer_wanted = False
        self.writer.stop(WRITER_STOP_GRACE)

    # -- the jobs done here --------------------------------------------------------------------

    def write_home(self, stats: Statistics) -> None:
        home = pages.home_page(stats, base_url=self.config.public_url)
        write_atomic(self.output / "index.html", home)

    def write_search_page(self) -> None:
        (self.output / "search").mkdir(parents=True, exist_ok=True)
        write_atomic(self.output / "search" / "index.html", pages.search_page())

    def write_site_pages(self) -> None:
        faq = site_pages.faq_page(base_url=self.config.public_url, contact=self.config.contact)
        write_atomic(self.output / "faq" / "index.html", faq)
        write_atomic(self.output / NOT_FOUND_PAGE, site_pages.not_found_page())

    def _copy_static(self) -> None:
        target = self.output / "static"
        target.mkdir(parents=True, exist_ok=True)
        for entry in resources.files("piwheels.web").joinpath("static").iterdir():
            if entry.is_file():
                with resources.as_file(entry) as source:
                    temp = target / f".{entry.name}.tmp"
                    shutil.copyfile(source, temp)
                    temp.replace(target / entry.name)

    def close(self) -> None:
        self._stop_writer()
        # All three are written afresh at the next start.
        self.root.stop()
        self.search.stop()
        self.sitemap.stop()
        self._save_unwritten()
        self.db.close()
        super().close()

    def _save_unwritten(self) -> None:
        """Requests not written at the stop are redone at the next start: those the writer had
        not finished and those still queued here."""
        pages = [messages.PageRequest(r.action, r.package) for r in self.in_flight]
        pages += [messages.PageRequest(*key) for key in self.retries]
        self.in_flight.clear()
        self.retries.clear()
        while True:
            try:
                action, data = self.inbox.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            except ProtocolError:
                continue
            if action != "HOME":  # Big Brother sends a fresh one soon after the start
                pages.append(
                    messages.PageRequest(action, data if action in ("BOTH", "PROJECT") else "")
                )
        if not pages:
            return
        try:
            self.db.save_pending_pages(pages)
            self.log.info("saved %d unwritten page requests for the next start", len(pages))
        except DatabaseError as exc:
            self.log.error("could not save %d unwritten page requests: %s", len(pages), exc)
