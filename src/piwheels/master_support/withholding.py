"""Cloud Gazer's part in PyPI's removals and quarantines: their wheels leave the served tree.

At each look at PyPI the database applies what PyPI removed or quarantines longer ago than
the grace (and lifts what it listed again) to the files' reasons (PYPIHOLD: migration 0018),
and names the files whose place on disk no longer fits them. The File Juggler moves those
(WITHHOLD or RELEASE, as for a cross-check's disagreement); each move is recorded once done
(PLACED), with the need for its project's pages, which are then asked for. A master that dies
between the database's decision and the move finds the same files at its next look: a file
stays misplaced in the database until its move is recorded, and moving it again is harmless.

It never waits: every request goes through a :class:`RequestPool`, and one look's work is done
before the next begins.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import partial
from operator import attrgetter
from typing import Any

from piwheels import protocols
from piwheels.db.removals import MISPLACED_BATCH
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.request_pool import RequestPool
from piwheels.master_support.task import Task
from piwheels.master_support.web_requests import PageRequests
from piwheels.protocols.messages import Withhold
from piwheels.records.removals import MisplacedFile, PlacedFiles, Withholding

MOVE_AT_ONCE = 100  # files in one WITHHOLD or RELEASE: the most the File Juggler takes
FS_TIMEOUT = 60.0  # seconds for a move: renames on one disk, a hundred files at most
ORACLE_TIMEOUT = 120.0  # as DbClient's


class PyPIWithholding:
    """The withholding of *task* (Cloud Gazer), having pages written through *pages*; a look
    every *config.pypi_interval*."""

    def __init__(self, task: Task, config: MasterConfig, pages: PageRequests) -> None:
        self.task = task
        self.log = task.log
        self.grace = config.removal_grace
        self.pages = pages
        # sockets of its own: a look in flight must not count as the task's recording work
        # (Cloud Gazer looks at PyPI only when that is done)
        self.oracles = RequestPool(
            task,
            config.oracle_queue,
            reversed(protocols.oracle),
            size=1,
            timeout=ORACLE_TIMEOUT,
            name="Oracle for withholding",
        )
        self.fs = RequestPool(
            task,
            config.fs_queue,
            reversed(protocols.file_juggler_control),
            size=1,
            timeout=FS_TIMEOUT,
            name="File Juggler",
        )
        self.moves_left = 0  # of the current look: a look is under way while above 0
        self.looking = False
        self.again = False  # the last look found a full batch: look again once it is done
        task.every(config.pypi_interval, self.look)
        task.every(1.0, self._look_again)

    def look(self) -> None:
        """Ask the database what is to be withheld or released now."""
        if self.looking or self.task.paused:
            return
        self.looking = True
        self.oracles.ask("PYPIHOLD", self.grace, self._found)

    def _look_again(self) -> None:
        if self.again and not self.looking:
            self.again = False
            self.look()

    def _found(self, status: str, found: Any) -> None:
        if status != "OK":
            self.log.error("cannot tell what PyPI's removals withhold (next look): %s", found)
            self.looking = False
            return
        withholding: Withholding = found
        if withholding.projects:
            # projects gone from the index as a whole, or back: the root and search change
            # (their own pages follow the moves of their files)
            self.log.info("withheld or released as a whole: %s", ", ".join(withholding.projects))
            self.pages.send("SITE")
            self.pages.send("SEARCH")
        self.again = len(withholding.files) >= MISPLACED_BATCH
        moves = list(_moves(withholding.files))
        self.moves_left = len(moves)
        if not moves:
            self.looking = False
        for package, filenames, withhold in moves:
            self.fs.ask(
                "WITHHOLD" if withhold else "RELEASE",
                Withhold(package, filenames),
                partial(self._moved, package, filenames, withhold),
            )

    def _moved(
        self, package: str, filenames: list[str], withhold: bool, status: str, detail: Any
    ) -> None:
        if status != "OK":
            # still misplaced in the database: tried again at the next look
            self.log.error(
                "cannot %s %s (next look): %s",
                "withhold" if withhold else "release",
                ", ".join(filenames),
                detail,
            )
            self._done()
            return
        self.log.warning(
            "%s %d files of %s: %s",
            "withheld" if withhold else "released",
            len(filenames),
            package,
            "PyPI removed or quarantines them" if withhold else "served again",
        )
        placed = PlacedFiles(filenames, withhold)
        self.oracles.ask("PLACED", placed, partial(self._placed, package))

    def _placed(self, package: str, status: str, detail: Any) -> None:
        if status != "OK":
            # moved, but not recorded as moved: moved again (harmlessly) at the next look
            self.log.error("cannot record the moves of %s' files: %s", package, detail)
        self.pages.project(package)
        self._done()

    def _done(self) -> None:
        self.moves_left -= 1
        if self.moves_left <= 0:
            self.looking = False


def _moves(files: list[MisplacedFile]) -> Iterator[tuple[str, list[str], bool]]:
    """*files* as File Juggler requests: by project and direction, MOVE_AT_ONCE at most."""
    key = attrgetter("package", "withhold")
    for (package, withhold), group in itertools.groupby(sorted(files, key=key), key=key):
        names = [f.filename for f in group]
        for start in range(0, len(names), MOVE_AT_ONCE):
            yield package, names[start : start + MOVE_AT_ONCE], withhold
