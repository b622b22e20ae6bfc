"""The Secretary: turns bursts of page requests into single writes for the Scribe.

A release landing on several ABIs asks for the same project's pages once per build; the
Secretary holds each request for ``page_delay`` seconds, merging repeats (BOTH covers PROJECT;
a newer HOME replaces an older one), then passes it on. Requests still held when the master
stops are saved in the database and passed on at the next start.

When the Scribe falls behind, requests stay here, where repeats still merge, rather than
queueing up in front of it; passing one on never blocks, so the Secretary always hears QUIT (a
blocking send once held it past the master's stop at PyPI's scale).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import zmq

from piwheels import protocols
from piwheels.master.the_scribe import INBOX_BACKLOG
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.db_client import DatabaseError, DbClient
from piwheels.master_support.task import Task
from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA
from piwheels.protocols.messages import PageRequest

# A request held this long is passed on even if repeats keep arriving.
MAX_HOLD = 30.0
# Requests passed on to the Scribe and not yet taken by it; the rest wait here, where repeats
# still merge.
SCRIBE_BACKLOG = INBOX_BACKLOG


def _modified(path: str) -> float:
    try:
        return os.stat(path).st_mtime  # noqa: PTH116 (once per project: see below)
    except OSError:
        return float("-inf")


class TheSecretary(Task):
    name = "Secretary"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.inbox = self.socket(zmq.PULL, protocols.web).bind(config.web_queue)
        self.scribe = self.socket(zmq.PUSH, reversed(protocols.web))
        self.scribe.zsock.setsockopt(zmq.SNDHWM, SCRIBE_BACKLOG)
        self.scribe.connect(config.scribe_queue)
        self.register(self.inbox, self.handle_request)
        self.every(min(0.2, config.page_delay), self.pass_on)
        # Requests past MAX_HOLD can sit behind ones still arriving: looked for now and then.
        self.every(MAX_HOLD / 4, self.pass_on_overdue)
        # (action, package) -> [first asked, last asked, data], oldest last ask first, so a
        # pass stops at the first request not yet quiet (at PyPI's scale thousands are held)
        self.held: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()

    def once(self) -> None:
        try:
            saved = self.db.take_pending_pages()
        except DatabaseError as exc:
            self.log.error("cannot read the pages saved at the last stop: %s", exc)
            return
        if saved:
            self.log.info("redoing %d page requests saved at the last stop", len(saved))
        for action, package in saved:
            self.hold(action, package or None, NO_DATA if action in ("SEARCH", "SITE") else package)
        self.hold_stale_indexes()

    def hold_stale_indexes(self) -> None:
        """Ask for the pages of every project whose index is older than its newest recorded
        file: whatever happened (a crash, a lost disk, pages from before requests were kept in
        the database), pip finds every recorded wheel after a start."""
        # a string, not a Path per project: at PyPI's scale (923,106 indexes) pathlib took
        # 7.8 s of CPU for the stats, os.stat on strings 3.7 s
        simple = f"{self.config.output_path}/simple"
        stale = []
        after = ""
        try:
            while published := self.db.last_published(after):
                stale += [
                    package
                    for package, newest in published
                    if _modified(f"{simple}/{package}/index.json") < newest
                ]
                after = published[-1].package
        except DatabaseError as exc:
            # those found so far are still written
            self.log.error("cannot check the projects' indexes after %r: %s", after, exc)
        if stale:
            self.log.warning(
                "%d projects' indexes miss recorded files (%s%s): writing them again",
                len(stale),
                ", ".join(stale[:3]),
                ", ..." if len(stale) > 3 else "",
            )
        for package in stale:
            self.hold("BOTH", package, package)

    def handle_request(self) -> None:
        try:
            action, data = self.inbox.recv()
        except ProtocolError as exc:
            self.log.error("bad page request: %s", exc)
            return
        self.hold(action, data if action in ("BOTH", "PROJECT") else None, data)

    def hold(self, action: str, package: str | None, data: Any) -> None:
        if action == "PROJECT" and ("BOTH", package) in self.held:
            return  # already asked for, and more
        if action == "BOTH":
            self.held.pop(("PROJECT", package or ""), None)
        now = time.monotonic()
        key = (action, package or "")
        entry = self.held.get(key)
        if entry is None:
            self.held[key] = [now, now, data]
        else:
            entry[1], entry[2] = now, data
            self.held.move_to_end(key)

    def pass_on(self) -> None:
        """Pass on the requests quiet for ``page_delay``, oldest first."""
        quiet = time.monotonic() - self.config.page_delay
        while self.held:
            key, (_, last, data) = next(iter(self.held.items()))
            if last > quiet or not self._send(key, data):
                return

    def pass_on_overdue(self) -> None:
        """Pass on the requests asked for again and again for MAX_HOLD: a whole look."""
        overdue = time.monotonic() - MAX_HOLD
        for key, (first, _, data) in list(self.held.items()):
            if first <= overdue and not self._send(key, data):
                return

    def _send(self, key: tuple[str, str], data: Any) -> bool:
        """Pass one request on; False when the Scribe is behind (it stays held)."""
        try:
            self.scribe.send(key[0], data, flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        del self.held[key]
        return True

    def close(self) -> None:
        if self.held:
            pages = [PageRequest(*key) for key in self.held if key[0] != "HOME"]
            try:
                self.db.save_pending_pages(pages)
                self.log.info("saved %d page requests for the next start", len(pages))
            except DatabaseError as exc:
                self.log.error("could not save %d page requests: %s", len(pages), exc)
        self.db.close()
        super().close()
