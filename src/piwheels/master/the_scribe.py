"""The Scribe: writes the web output — the index, project pages, logs, home and search.

Every file is written atomically (a temporary file renamed into place), so a reader never sees
half a page. A page that cannot be written (a full disk, a wheel that will not open) is logged
and skipped; the Scribe carries on with the next request. The two pages that list every
project (the index root and the search index) are written by child processes
(:mod:`piwheels.web.bulk`): at PyPI's scale they would hold the master's CPU for seconds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import zmq

from piwheels import protocols
from piwheels.master.child_jobs import ChildJob
from piwheels.master.config import MasterConfig
from piwheels.master.db_client import DatabaseError, DbClient
from piwheels.master.task import Task
from piwheels.transport import ProtocolError
from piwheels.web import bulk, index, pages
from piwheels.web.model import ProjectData, Statistics, WheelFile, log_path
from piwheels.web.writer import (
    MetadataError,
    extract_metadata,
    write_atomic,
    write_gzip_atomic,
)

INBOX_BACKLOG = 50  # requests queued here; the Secretary holds (and merges) the rest


# Writing the root may take at most this share of the time: at PyPI's scale its query and
# rendering take a few seconds (1.7 s for the query with migration 0006; 25-40 s before it),
# so there it is rewritten every half minute or so rather than every root_interval.
ROOT_DUTY = 0.1


class TheScribe(Task):
    name = "Scribe"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(config, context)
        self.db = DbClient(config.oracle_queue, self.context)
        self.output = Path(config.output_path)
        self.simple = self.output / "simple"
        self.inbox = self.socket(zmq.PULL, protocols.web)
        self.inbox.zsock.setsockopt(zmq.RCVHWM, INBOX_BACKLOG)
        self.inbox.bind(config.scribe_queue)
        self.register(self.inbox, self.handle_request)
        env = {**os.environ, bulk.DSN_VARIABLE: config.dsn}
        command = [sys.executable, "-m", "piwheels.web.bulk"]
        self.root = ChildJob(
            "the index root",
            [*command, "root", str(self.output)],
            env,
            self.log,
            min_gap=config.root_interval,
            duty=ROOT_DUTY,
        )
        self.search = ChildJob(
            "the search index", [*command, "search", str(self.output)], env, self.log
        )
        self.every(1.0, self.root.check)
        self.every(1.0, self.search.check)

    def once(self) -> None:
        self.simple.mkdir(parents=True, exist_ok=True)
        self._copy_static()
        self._attempt("the search page", self.write_search_page)
        self.search.request()
        self.root.request()

    def handle_request(self) -> None:
        try:
            action, data = self.inbox.recv()
        except ProtocolError as exc:
            self.log.error("bad request: %s", exc)
            return
        if action in ("BOTH", "PROJECT"):
            self._attempt(f"the pages of {data}", self.write_project, data, action == "BOTH")
        elif action == "HOME":
            self._attempt("the home page", self.write_home, data)
        else:  # SEARCH
            self.search.request()

    def _attempt(self, what: str, job: Any, *args: Any) -> None:
        """Run one writing job; a failure is logged and the Scribe carries on."""
        try:
            job(*args)
        except (DatabaseError, OSError, MetadataError) as exc:
            self.log.error("cannot write %s: %s", what, exc)
        except Exception:
            # A page that cannot be made (a bug, data we did not foresee) must not stop the
            # farm's builds: the traceback goes to the log and the next page is tried.
            self.log.exception("cannot write %s", what)

    # -- the jobs ------------------------------------------------------------------------------

    def write_project(self, package: str, with_index: bool) -> None:
        project = self.db.get_project_data(package)
        if project is None:
            self.log.warning("no such project %r: nothing written", package)
            return
        project = self._with_metadata(project)
        directory = self.simple / project.name
        listed = (directory / "index.html").exists()
        if with_index and (project.files or listed):
            html, json = index.simple_project(project)
            directory.mkdir(exist_ok=True)
            write_atomic(directory / "index.html", html)
            write_atomic(directory / "index.json", json)
            if project.files and not listed:
                self.root.request()  # a project new to the index
        apt = newest_apt_dependencies(project)
        pages_dir = self.output / "project" / project.name
        (pages_dir / "json").mkdir(parents=True, exist_ok=True)
        write_atomic(pages_dir / "index.html", pages.project_page(project, apt_dependencies=apt))
        write_atomic(pages_dir / "json" / "index.json", pages.project_json(project, apt))
        for version in project.versions:
            for build in version.builds:
                self._write_log(build.build_id)
        self.log.info("wrote the pages of %s", project.name)

    def _with_metadata(self, project: ProjectData) -> ProjectData:
        """Make sure each wheel has its .metadata beside it and note the hash (PEP 658)."""

        missing: list[str] = []

        def annotate(file: WheelFile) -> WheelFile:
            wheel = self.simple / project.name / file.filename
            metadata = wheel.with_name(wheel.name + ".metadata")
            if not metadata.exists():
                if not wheel.exists():
                    missing.append(file.filename)
                    return file
                try:
                    write_atomic(metadata, extract_metadata(wheel))
                except MetadataError as exc:
                    self.log.error("no .metadata for %s: %s", file.filename, exc)
                    return file
            digest = hashlib.sha256(metadata.read_bytes()).hexdigest()
            return file._replace(metadata_hash=digest)

        annotated = project._replace(
            versions=[
                version._replace(files=[annotate(f) for f in version.files])
                for version in project.versions
            ]
        )
        if missing:
            # one line a project: a lost output disk would otherwise log every wheel on record
            self.log.error(
                "%d of %s's files are recorded but missing from %s (%s%s)",
                len(missing),
                project.name,
                self.simple / project.name,
                ", ".join(missing[:3]),
                ", ..." if len(missing) > 3 else "",
            )
        return annotated

    def _write_log(self, build_id: int) -> None:
        path = self.output / log_path(build_id)
        if path.exists():
            return
        output = self.db.get_build_output(build_id)
        if output is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_gzip_atomic(path, pages.build_log(output))

    def write_home(self, stats: Statistics) -> None:
        write_atomic(self.output / "index.html", pages.home_page(stats))

    def write_search_page(self) -> None:
        (self.output / "search").mkdir(parents=True, exist_ok=True)
        write_atomic(self.output / "search" / "index.html", pages.search_page())

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
        # Both are written afresh at the next start.
        self.root.stop()
        self.search.stop()
        self._save_unwritten()
        self.db.close()
        super().close()

    def _save_unwritten(self) -> None:
        """Requests queued but not written at the stop are redone at the next start."""
        pages = []
        while True:
            try:
                action, data = self.inbox.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            except ProtocolError:
                continue
            if action != "HOME":  # Big Brother sends a fresh one soon after the start
                pages.append((action, data if action in ("BOTH", "PROJECT") else ""))
        if not pages:
            return
        try:
            self.db.save_pending_pages(pages)
            self.log.info("saved %d unwritten page requests for the next start", len(pages))
        except DatabaseError as exc:
            self.log.error("could not save %d unwritten page requests: %s", len(pages), exc)


def newest_apt_dependencies(project: ProjectData) -> list[str]:
    """The Debian packages the newest release with wheels needs at run time."""
    for version in project.versions:
        if version.files:
            return sorted({dep for f in version.files for dep in f.apt_dependencies})
    return []
