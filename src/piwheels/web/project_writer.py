"""A project's pages, written in a child process of the master.

Every recorded build asks for its project's pages. Made inside the master, each took a large
read through the Oracles (checked by the codec both ways), the rendering of four pages and the
build logs: at PyPI's scale the Scribe held the interpreter lock for half of the master's time,
and the slaves' replies waited behind it. So the Scribe runs this module as a long-lived child
(``python -m piwheels.web.project_writer OUTPUT``) that reads the database on a connection of its
own, and only passes requests to it and reads back what it says.

The two speak :data:`piwheels.protocols.page_writer` on the child's stdin and stdout (framed
by :mod:`piwheels.pipes`): BOTH or PROJECT with a package in, DONE out once each request is
over whatever its outcome, and LOG for each log record, which the Scribe logs as its own. A
project that cannot be written is logged and skipped, as in the Scribe before. Anything else
the child prints (an interpreter's traceback) goes to stderr, which the Scribe logs too. The
database address comes in the environment (:data:`piwheels.web.bulk.DSN_VARIABLE`), never on
the command line. End of input: exit 0.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import sys
from pathlib import Path
from typing import IO, Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from piwheels import protocols, provenance
from piwheels.db.database import Database
from piwheels.db.migrate import SchemaError
from piwheels.master_support.children import ignore_stop_signals
from piwheels.message_codec import ProtocolError
from piwheels.pipes import StreamBroken, read_message, write_message
from piwheels.protocols.messages import LogRecord, PagesWritten
from piwheels.records.builds import UNCHECKED
from piwheels.records.projects import ProjectData, WheelFile, WheelOrigin
from piwheels.web import index, pages
from piwheels.web.bulk import DSN_VARIABLE, database_from_environment, give_way
from piwheels.web.layout import log_path
from piwheels.web.writer import MetadataError, extract_metadata, write_atomic, write_gzip_atomic

CHILD_SIDE = reversed(protocols.page_writer)

log = logging.getLogger("piwheels.project_writer")


class ProjectWriter:
    """Writes a project's pages (and, when asked, its simple index page) from the database."""

    def __init__(
        self,
        output: Path,
        db: Database,
        log: logging.Logger,
        public_url: str | None = None,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> None:
        self.output = output
        self.public_url = public_url  # for the install lines; else filled in by the browser
        self.simple = output / "simple"
        self.db = db
        self.log = log
        # the master's, for each published wheel's provenance (none: no statements written)
        self.signing_key = signing_key

    def write(self, package: str, with_index: bool) -> bool:
        """Write *package*'s pages; True when it has just entered the index (its first file).

        The requests recorded for them (see migration 0009) are read first and forgotten once
        the pages are written: a build recorded meanwhile asks again, and is written next.
        """
        requests = self.db.page_requests(package)
        written = {kind: n for kind, n in requests.items() if with_index or kind == "PROJECT"}
        project = self.db.get_project_data(package)
        if project is None:
            self.log.warning("no such project %r: nothing written", package)
            self.db.pages_written(package, requests)
            return False
        project = self._with_metadata(project)
        for version in project.versions:  # before the statements, which name the logs' digests
            for build in version.builds:
                self._write_log(build.build_id)
        project = self._with_provenance(project)
        directory = self.simple / project.name
        listed = (directory / "index.html").exists()
        new = False
        if with_index and (project.files or listed):
            html, json_page = index.simple_project(project)
            directory.mkdir(parents=True, exist_ok=True)
            write_atomic(directory / "index.html", html)
            write_atomic(directory / "index.json", json_page)
            new = bool(project.files) and not listed
        apt = newest_apt_dependencies(project)
        pages_dir = self.output / "project" / project.name
        (pages_dir / "json").mkdir(parents=True, exist_ok=True)
        html = pages.project_page(
            project,
            apt_dependencies=apt,
            unowned_libraries=newest_unowned_libraries(project),
            base_url=self.public_url,
        )
        write_atomic(pages_dir / "index.html", html)
        json_page = pages.project_json(project, apt, base_url=self.public_url)
        write_atomic(pages_dir / "json" / "index.json", json_page)
        self.db.pages_written(package, written)
        self.log.info("wrote the pages of %s", project.name)
        return new

    def _with_metadata(self, project: ProjectData) -> ProjectData:
        """Make sure each wheel has its .metadata beside it and note the hash (PEP 658)."""

        missing: list[str] = []

        def annotate(file: WheelFile) -> WheelFile:
            if file.withheld:  # out of the served tree, with its .metadata
                return file
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

    def _with_provenance(self, project: ProjectData) -> ProjectData:
        """Sign the provenance of each wheel that has none beside it yet, and note which have.

        A statement is written once, but for a build another builder checked, whose verdict it
        names: that one is made again and written if it changed (its signature is
        deterministic, so an unchanged statement gives the same bytes).
        """
        if self.signing_key is None:
            return project
        attested = set()
        for origin in self.db.get_wheel_origins(project.name):
            wheel = self.simple / project.name / origin.filename
            path = wheel.with_name(wheel.name + provenance.SUFFIX)
            checked = origin.cross_check != UNCHECKED
            if not path.exists() or checked:
                if not wheel.exists():  # _with_metadata logged it
                    continue
                facts = self._facts(origin)
                signed = provenance.sign(provenance.statement(facts), self.signing_key)
                if not (checked and path.exists() and path.read_bytes() == signed):
                    write_atomic(path, signed)
            attested.add(origin.filename)
        return project._replace(
            versions=[
                version._replace(
                    files=[f._replace(provenance=f.filename in attested) for f in version.files]
                )
                for version in project.versions
            ]
        )

    def _facts(self, origin: WheelOrigin) -> provenance.BuildFacts:
        log_file = self.output / log_path(origin.build_id)
        try:  # the digest of the log as served (decompressed), so anyone can check it
            log_sha256 = hashlib.sha256(gzip.decompress(log_file.read_bytes())).hexdigest()
        except (OSError, EOFError, gzip.BadGzipFile):
            log_sha256 = ""
        return provenance.BuildFacts(
            filename=origin.filename,
            sha256=origin.filehash,
            size=origin.filesize,
            package=origin.package,
            version=origin.version,
            abi_tag=origin.abi_tag,
            sdist_url=origin.sdist_url,
            sdist_sha256=origin.sdist_sha256,
            builder_key=origin.builder_key,
            builder_label=origin.label,
            builder_os=f"{origin.os_name} {origin.os_version}".strip(),
            builder_python=origin.py_version_tag,
            platform_tag=origin.platform_tag,
            build_id=origin.build_id,
            built_at=origin.built_at,
            duration=origin.duration,
            log_sha256=log_sha256,
            cross_check=origin.cross_check,
            farm_url=self.public_url or "",
        )

    def _write_log(self, build_id: int) -> None:
        path = self.output / log_path(build_id)
        if path.exists():
            return
        output = self.db.get_build_output(build_id)
        if output is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_gzip_atomic(path, pages.build_log(output))


def newest_apt_dependencies(project: ProjectData) -> list[str]:
    """The Debian packages the newest release with wheels needs at run time."""
    for version in project.versions:
        if version.files:
            return sorted({dep for f in version.files for dep in f.apt_dependencies})
    return []


def newest_unowned_libraries(project: ProjectData) -> list[str]:
    """The shared libraries the newest release with wheels links that no Debian package owned
    on the builders (see WheelFile.unowned_libraries)."""
    for version in project.versions:
        if version.files:
            return sorted({lib for f in version.files for lib in f.unowned_libraries})
    return []


class MessageHandler(logging.Handler):
    """Log records as LOG messages to the Scribe (a traceback in the text)."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.stream, "LOG", LogRecord(record.levelno, self.format(record)))
        except Exception:
            self.handleError(record)


def say(stream: IO[bytes], action: str, data: Any) -> None:
    write_message(stream, CHILD_SIDE, action, data)


def serve(writer: ProjectWriter, requests: IO[bytes], out: IO[bytes]) -> None:
    """Write the pages each request asks for, saying when each is done, until the input ends."""
    while True:
        try:
            request = read_message(requests, CHILD_SIDE)
        except StreamBroken as exc:
            log.error("cannot read requests any more: %s", exc)
            return
        except ProtocolError as exc:
            log.error("bad request: %s", exc)
            continue
        if request is None:
            return
        action, package = request
        new = retry = False
        try:
            new = writer.write(package, with_index=action == "BOTH")
        except (psycopg.OperationalError, SchemaError) as exc:
            log.error("cannot write the pages of %s (asked again later): %s", package, exc)
            writer.db.close()  # connected afresh (and the schema checked) for the next request
            retry = True
        except (psycopg.Error, OSError, MetadataError) as exc:
            log.error("cannot write the pages of %s: %s", package, exc)
        except Exception:
            # A page that cannot be made (a bug, data we did not foresee) must not stop the
            # others: the traceback goes to the log and the next request is taken.
            log.exception("cannot write the pages of %s", package)
        say(out, "DONE", PagesWritten(package, new, retry))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m piwheels.web.project_writer",
        description=(
            "Write the pages of the projects the Scribe asks for on stdin (see "
            f"piwheels.protocols.page_writer); the database comes from ${DSN_VARIABLE}."
        ),
    )
    parser.add_argument("output", type=Path, help="the web output directory")
    parser.add_argument("--public-url", help="where users reach it, for the install lines")
    parser.add_argument(
        "--key-dir", type=Path, help="the master's keys: sign each wheel's provenance with its"
    )
    args = parser.parse_args(argv)
    out = sys.stdout.buffer
    root = logging.getLogger()
    root.addHandler(MessageHandler(out))
    root.setLevel(logging.INFO)
    ignore_stop_signals()  # the master closes our stdin once it has finished with us
    give_way()
    db = database_from_environment()
    if db is None:
        return 2
    key = None
    if args.key_dir is not None:
        try:
            key = provenance.signing_key(args.key_dir)
        except provenance.ProvenanceKeyError as exc:
            log.error("no provenance will be signed: %s", exc)
    try:
        writer = ProjectWriter(args.output, db, log, args.public_url, key)
        serve(writer, sys.stdin.buffer, out)
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
