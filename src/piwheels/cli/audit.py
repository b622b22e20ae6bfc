"""``piw-audit``: compare the output directory with the database, and repair what can be.

The audit itself (:mod:`piwheels.cli.audit_scan`) only reads: the database on a read-only
connection, the output directory by listing and stat (and hashing, with ``--hashes``). The
repairs that change what the master knows go through Mr. Chase, as ``piw-remove`` and
``piw-rebuild`` do, so the master's own state (its page requests, the queue it holds) follows:

* a recorded wheel that is missing or damaged: REMOVE its version (without a skip), which deletes
  the version's builds and files on every ABI, rewrites its pages and queues it again. No
  request forgets one build alone, and a version's builds on other ABIs are only rebuilt;
* a missing ``.metadata``, project page, project index page or build log: REBUILD BOTH of the
  project, whose writer makes each of them again when it is missing.

Two repairs touch only files that no state of the master's depends on, and are done here: stale
temporary files are deleted (as the master does at its start), and the index root, which the
master writes only at its start and when a project enters the index, is written from the
database exactly as the master's own child writes it. Files not on record are never deleted:
they are reported, and moved aside only with ``--move-unrecorded``.
"""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from piwheels import defaults
from piwheels.cli.audit_scan import Audit, Kind, Problem, Scope
from piwheels.cli.master import MASTER_ROLE
from piwheels.cli.options import per_run
from piwheels.cli.tools import (
    BadInput,
    ExitStatus,
    MasterClient,
    Progress,
    ToolError,
    add_master_options,
    add_yes_option,
    confirm,
    make_tool_parser,
    positive_seconds,
    project_name,
    run_tool,
)
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import SchemaError, check_version
from piwheels.db.web_queries import indexed_projects
from piwheels.web.bulk import write_root

__all__ = ["main"]

DESCRIPTION = """\
Compare the web output with the database and report, one line each with its kind and path:
recorded wheels missing (missing-file), of another size (wrong-size) or, with --hashes, with
other bytes (wrong-hash); recorded wheels without their .metadata (missing-metadata); index
pages, project pages (missing-page) and build logs (missing-log) that should exist; files in
simple/ that are not on record (unrecorded-file); temporary files no writer will finish
(stale-temp). Whatever is younger than --grace is taken to be in flight on a running master.
With --repair (asks first; --yes to skip the question) the master is asked to remove and rebuild
each version whose wheel is missing or damaged and to rewrite the pages of each project with a
missing page, .metadata or log; stale temporary files are deleted and the index root is
rewritten. Files not on record are left alone, or moved aside with --move-unrecorded. Without
--dsn, the database is the one piw-master runs in --data-dir (it must be running).
"""

EPILOG = (
    "Exit status: 0 nothing wrong; 1 problems were found (whether or not --repair repaired "
    "them: audit again to check) or the master refused a repair; 2 bad arguments, the database "
    "cannot be read, or the repairs were not confirmed; 3 the master (needed for --repair) is "
    "not running or did not answer. The options but --repair, --yes, --move-unrecorded and "
    "PACKAGE can also be set in a config file (--config, under [audit], dashes as underscores) "
    "or as environment variables PIW_<NAME> (e.g. PIW_DSN)."
)


class DatabaseUnusable(ToolError):
    """The database cannot be reached or read, or its schema is not this piwheels's."""

    status = ExitStatus.BAD_INPUT


class RepairFailed(ToolError):
    """A file could not be deleted, moved or written; what was done before it stays done."""

    status = ExitStatus.MASTER_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = make_tool_parser("piw-audit", DESCRIPTION)
    parser.epilog = EPILOG
    parser.add_argument(
        "packages",
        nargs="*",
        type=project_name,
        metavar="PACKAGE",
        help="audit only these projects (default: every project, and the index root)",
    )
    parser.add_argument(
        "-d", "--dsn", help="the database, as piw-master takes it (only read, never written)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir(),
        help="piw-master's --data-dir: its database, when no --dsn, and its output",
    )
    parser.add_argument(
        "-o", "--output-path", type=Path, help="the web output directory (default: DATA_DIR/www)"
    )
    parser.add_argument(
        "--hashes",
        action="store_true",
        help="also compare each wheel's SHA256 with the record (reads every wheel; by default "
        "sizes are compared)",
    )
    parser.add_argument(
        "--grace",
        type=seconds,
        default=600.0,
        metavar="SECONDS",
        help="what changed more recently than this is taken to be in flight, not wrong",
    )
    repairs = parser.add_argument_group("repairs")
    for action in (
        repairs.add_argument(
            "--repair", action="store_true", help="repair what can be (asks for confirmation)"
        ),
        repairs.add_argument(
            "--move-unrecorded",
            type=Path,
            metavar="DIR",
            help="with --repair: move the files not on record to DIR (default: leave them)",
        ),
    ):
        per_run(action)
    add_yes_option(parser)
    add_master_options(parser)
    return parser


def seconds(text: str) -> float:
    """A --grace: 0 (nothing is in flight: a stopped master) or a positive number of seconds."""
    return 0.0 if text.strip() in ("0", "0.0") else positive_seconds(text)


def main(argv: Sequence[str] | None = None) -> int:
    found: list[Problem] = []
    status = run_tool(build_parser(), argv, lambda args: found.extend(run(args)))
    if status == ExitStatus.OK and found:
        return ExitStatus.MASTER_ERROR  # 1: problems were found
    return status


def run(args: argparse.Namespace) -> list[Problem]:
    if args.move_unrecorded is not None and not args.repair:
        raise BadInput("--move-unrecorded goes with --repair")
    output: Path = args.output_path or args.data_dir / "www"
    if not output.is_dir():
        raise BadInput(f"no output directory at {output}")
    scope = Scope(output, args.packages or None, hashes=args.hashes, grace=args.grace)
    with connect(database_dsn(args)) as conn:
        done = audit(conn, scope, show_progress=args.quiet == 0)
        for problem in done.problems:
            print(problem.line())
        print(summary(done))
        if args.repair and done.problems:
            repair(conn, args, output, done.problems)
    return done.problems


def database_dsn(args: argparse.Namespace) -> str:
    if args.dsn:
        return str(args.dsn)
    embedded = EmbeddedPostgres(args.data_dir / "postgres")
    if not embedded.is_running():
        raise DatabaseUnusable(
            f"no --dsn, and no database running in {embedded.data_dir} "
            "(piw-master without --dsn runs one there while it runs)"
        )
    return make_conninfo(embedded.dsn(), user=MASTER_ROLE)


def connect(dsn: str) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseUnusable(f"cannot connect to the database: {exc}") from None
    try:
        check_version(conn)
        # Nothing here may write, whatever the role may: the repairs go through the master.
        conn.execute("SET default_transaction_read_only = on")
    except (psycopg.Error, SchemaError) as exc:
        conn.close()
        raise DatabaseUnusable(f"cannot use the database: {exc}") from None
    return conn


def audit(conn: psycopg.Connection[Any], scope: Scope, *, show_progress: bool) -> Audit:
    """The audit of *scope*, run: its ``problems``, and what it checked."""
    checker = Audit(conn, scope)
    try:
        projects = checker.projects()
        # One unit a project, and with --hashes one a byte, which is where the time goes.
        total = len(projects) + (checker.bytes_to_hash(projects) if scope.hashes else 0)
        progress = Progress(total, enabled=show_progress)

        def advance(label: str, amount: int) -> None:
            progress.label = label
            progress.advance(amount)

        checker.advance = advance
        try:
            checker.problems = checker.run(projects)
        finally:
            progress.finish()
    except psycopg.Error as exc:
        raise DatabaseUnusable(f"cannot read the database: {exc}") from None
    except OSError as exc:  # say, a directory of the output this user may not read
        raise BadInput(f"cannot read the output: {exc}") from None
    return checker


def summary(done: Audit) -> str:
    files, projects = _count(done.files_checked, "file"), _count(done.projects_checked, "project")
    checked = f"{files} of {projects} checked" + (
        ", with their hashes" if done.scope.hashes else ""
    )
    problems = done.problems
    if not problems:
        return f"no problems ({checked})"
    counts = Counter(problem.kind for problem in problems)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    return f"{_count(len(problems), 'problem')}: {kinds} ({checked})"


# -- repairs ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What --repair does about the problems found, in the order it does it."""

    remove: set[tuple[str, str]] = field(default_factory=set)  # versions to remove and rebuild
    rewrite: set[str] = field(default_factory=set)  # projects whose pages to ask for
    root: bool = False  # write the index root
    delete: list[Path] = field(default_factory=list)  # stale temporary files
    move: list[Path] = field(default_factory=list)  # files not on record, with --move-unrecorded

    def describe(self, move_to: Path | None) -> str:
        what = []
        if self.remove:
            # A lost disk can make thousands: the question names a few and counts the rest.
            names = [f"{p} {v}" for p, v in sorted(self.remove)]
            listed = ", ".join(names[:5]) + (
                f" and {len(names) - 5} more" if len(names) > 5 else ""
            )
            what.append(f"remove {listed} (builds and wheels on every ABI) to be built again")
        if self.rewrite:
            what.append(f"ask for the pages of {_count(len(self.rewrite), 'project')}")
        if self.root:
            what.append("rewrite the index root")
        if self.delete:
            what.append(f"delete {_count(len(self.delete), 'stale temporary file')}")
        if self.move:
            what.append(f"move {_count(len(self.move), 'file')} not on record to {move_to}")
        return "; ".join(what)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def plan(problems: list[Problem], *, move: bool) -> Plan:
    todo = Plan()
    for problem in problems:
        if problem.kind in (Kind.MISSING_FILE, Kind.WRONG_SIZE, Kind.WRONG_HASH):
            assert problem.package is not None
            assert problem.version is not None
            todo.remove.add((problem.package, problem.version))
        elif problem.kind == Kind.STALE_TEMP:
            todo.delete.append(problem.path)
        elif problem.kind == Kind.UNRECORDED_FILE:
            if move:
                todo.move.append(problem.path)
        elif problem.package is None:
            todo.root = True
        else:
            todo.rewrite.add(problem.package)
    # a removal rewrites the project's pages itself
    todo.rewrite -= {package for package, _ in todo.remove}
    return todo


def repair(
    conn: psycopg.Connection[Any], args: argparse.Namespace, output: Path, problems: list[Problem]
) -> None:
    todo = plan(problems, move=args.move_unrecorded is not None)
    question = todo.describe(args.move_unrecorded)
    if not question:
        print("nothing that --repair can repair")
        return
    confirm(question, assume_yes=args.yes)
    # The master's repairs first: if it cannot be reached (exit 3), nothing at all was done.
    if todo.remove or todo.rewrite:
        with MasterClient(args.import_queue, args.timeout) as client:
            for package, version in sorted(todo.remove):
                client.expect_done("REMOVE", (package, version, ""))
                print(f"removed {package} {version}, to be built again")
            for package in sorted(todo.rewrite):
                client.expect_done("REBUILD", ("BOTH", package))
                print(f"asked the master for the pages of {package}")
    try:
        if todo.root:
            # After the removals, which may have taken a project's last file out of the index.
            write_root(output, indexed_projects(conn))
            print(f"rewrote {output / 'simple' / 'index.html'} and index.json")
        for path in todo.delete:
            path.unlink(missing_ok=True)
            print(f"deleted {path}")
        for path in todo.move:
            target = args.move_unrecorded / path.relative_to(output)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            print(f"moved {path} to {target}")
    except psycopg.Error as exc:
        raise DatabaseUnusable(f"cannot read the database: {exc}") from None
    except OSError as exc:
        raise RepairFailed(str(exc)) from None
    if todo.remove or todo.rewrite:
        print("the master writes the pages within seconds: audit again to check")
