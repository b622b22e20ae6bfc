"""The pages that list every project: the simple index root, the search index and the sitemap.

At PyPI's scale each lists about a million projects. Made inside the master they took seconds
of its CPU — fetching, checking and rendering a million rows — and with it the interpreter
lock every other task needs: the slaves' replies stalled behind them (bench/bench_slaves.py).
So the Scribe runs this module as a child process (``python -m piwheels.web.bulk root OUTPUT``;
the sitemap's also takes ``--public-url``, as its URLs must be absolute), which reads the
database on a connection of its own and writes atomically; the Scribe only starts it and
notices when it ends. The database address comes in the environment
(``PIW_BULK_DSN``), never on the command line, where any local user could read a password.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from piwheels.db.database import Database
from piwheels.master_support.children import ignore_stop_signals
from piwheels.records.projects import SearchEntry
from piwheels.web import index, pages, sitemap
from piwheels.web.writer import write_atomic

DSN_VARIABLE = "PIW_BULK_DSN"
KINDS = ("root", "search", "sitemap")

log = logging.getLogger(__name__)


def write_root(output: Path, projects: list[str]) -> None:
    """``simple/index.html`` and ``simple/index.json``: every project with a published file."""
    html, json = index.simple_root(projects)
    write_atomic(output / "simple" / "index.html", html)
    write_atomic(output / "simple" / "index.json", json)


def write_search_index(output: Path, entries: list[SearchEntry]) -> None:
    """``packages.json``, what the search page loads."""
    write_atomic(output / "packages.json", pages.search_index(entries))


def give_way() -> None:
    """Take the CPU only when the master and the database leave it: pages can wait.

    At nice 10 the project pages' child still took a third of a core while Cloud Gazer
    recorded 10,000 changes on 2 saturated cores (bench/bench_gazer.py); at 19 its weight
    against one task at 0 is 15 to 1024.
    """
    with contextlib.suppress(OSError):
        os.nice(19 - os.nice(0))


def database_from_environment() -> Database | None:
    """The database named by DSN_VARIABLE; None (and an error logged) if it names none."""
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        log.error("%s is not set: no database to read", DSN_VARIABLE)
        return None
    return Database(dsn)


def write(kind: str, db: Database, output: Path, public_url: str = "") -> int:
    """Write the *kind* page from *db*; return how many projects (sitemap: URLs) it lists."""
    if kind == "root":
        projects = db.get_indexed_projects()
        write_root(output, projects)
        return len(projects)
    if kind == "sitemap":
        pages_listed = sitemap.project_pages(db.get_sitemap_projects())
        return sitemap.write_sitemap(output, public_url, pages_listed)
    entries = db.get_search_entries()
    write_search_index(output, entries)
    return len(entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m piwheels.web.bulk",
        description=f"Write a page listing every project; the database comes from ${DSN_VARIABLE}.",
    )
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("output", type=Path, help="the web output directory")
    parser.add_argument(
        "--public-url", default="", help="where users reach the output (the sitemap's URLs)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    ignore_stop_signals()
    give_way()
    db = database_from_environment()
    if db is None:
        return 2
    try:
        # One core at most: at PyPI's scale these queries read millions of rows, and with
        # parallel workers they took both cores from the master and its database for ~40 s.
        db.conn.execute("SET max_parallel_workers_per_gather = 0")
        count = write(args.kind, db, args.output, args.public_url)
    except Exception as exc:  # the Scribe logs whatever this says, and tries again later
        log.error("cannot write the %s page: %s", args.kind, exc)
        return 1
    finally:
        db.close()
    print(f"listed {count} {'URLs' if args.kind == 'sitemap' else 'projects'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
