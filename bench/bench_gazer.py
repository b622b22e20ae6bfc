"""Following PyPI end to end: Cloud Gazer in a real master, against a synthetic PyPI of N projects.

A real master (:class:`piwheels.master.PiwMaster`, every task, Cloud Gazer following all of
PyPI, logging at INFO to a file as ``piw-master`` does, Cloud Gazer's own lines at DEBUG) runs
in a process of its own on a copy of the synthetic PyPI made by ``fill_db.py`` (fsync on). Its
``pypi_simple`` and ``pypi_json`` point at an index served here, on 127.0.0.1: a PEP 691 root
listing every package the database holds (not removed) with the serial it holds, gzipped as
PyPI serves it, and PyPI's JSON API for the projects that change, whose releases are the
versions the database holds for them, file by file.

1. Taking in the full list: with nothing changed, one look at PyPI takes the whole list (one
   GET), parses it and diffs it against the serials Cloud Gazer keeps. Timed from the root's
   request reaching the index to Cloud Gazer's "no changes" log line, best of ``repeat`` looks
   after the master's start-up work is over (anything Cloud Gazer does before asking for the
   list falls outside this window: the Oracles' minute-by-minute accounts in the notes show
   it, e.g. a GETPKGS). Reference (same run, before the master starts):
   the same GET with urllib, gunzipped, plus a bare ``json.loads``. Also reported: the first
   look at start, which reads the serials from the database as well (Cloud Gazer's "started"
   to its first "no changes" line), while the master's other start-up work runs beside it.
2. Applying CHANGES changes: the root then lists CHANGES projects with a higher serial (half of
   them with a new release, 9999.0, with an sdist; the rest changed in their description) and
   no longer lists 1% of them (removed from PyPI). Timed from Cloud Gazer's log line saying it
   found them to the moment SQL shows PyPI's serial recorded, then checked in SQL: every
   serial, every removal, every new release present and queued, every status recorded. Each
   changed project has its simple page too, as on PyPI (PEP 691 JSON, api-version 1.4, its
   files), which Cloud Gazer reads for the project's PEP 792 status: 1% of them are archived.
   References: the same JSON API documents and simple pages, one after another on one
   keep-alive connection (http.client), before the master starts; and, after it has stopped,
   the database's own ``set_project`` / ``remove_project`` for CHANGES other projects changed
   the same way, on one connection, no HTTP and no Oracle.
   Beside them, who used the machine meanwhile (from /proc, between Cloud Gazer's line and
   PyPI's serial seen recorded): the master, its fetch processes, PostgreSQL's server and the
   rest (this benchmark's index among it), each against the window's time on every core.

Run: ``python bench/bench_gazer.py [--quick] [--packages N] [--changes N] ...``.
"""

from __future__ import annotations

import asyncio
import gzip
import http.client
import json
import logging
import multiprocessing
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import fill_db
import psycopg
from bench_slaves import master_config, wait_until_idle
from harness import Row, Sizes, standalone

from piwheels.cli.log_output import LazyFileHandler
from piwheels.cli.options import LOG_FORMAT
from piwheels.db.database import Database
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.project_rows import ProjectVersion
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig

SIZES: dict[str, int | float] = {
    "packages": 1_000_000,
    "versions": 8_000_000,
    "builds": 5_000_000,
    "none_fraction": 0.4,
    "changes": 10_000,
    "repeat": 2,  # steady looks at the whole list timed (the best is reported)
    "interval": 10.0,  # the master's pypi_interval, seconds
    "gzip": 1,  # serve the root list gzipped, as PyPI does
    "durable": 1,
}
QUICK: dict[str, int | float] = {
    "packages": 1000,
    "versions": 8000,
    "builds": 5000,
    "changes": 100,
    "repeat": 1,
    "interval": 0.5,
}

SCRATCH = "bench_gazer"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
NEW_VERSION = "9999.0"  # the fill's versions are all "a.b.c": this one is new everywhere
DESCRIPTION = "A synthetic project. " * 150  # ~3 KB, about a PyPI project's median README
STAMP_FORMAT = "%Y-%m-%d %H:%M:%S,%f"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the synthetic PyPI ---------------------------------------------------------------------------


@dataclass
class Change:
    """What happens to one project on PyPI: a new serial, maybe a new release, or removal."""

    key: str
    display: str
    serial: int
    removed: bool = False
    new_release: bool = False
    versions: list[tuple[str, datetime, str | None, bool, bool]] = field(default_factory=list)


@dataclass
class Plan:
    """The index before and after, and the changes between them."""

    listing: list[tuple[str, str, int]]  # (key, display name, serial), as the database has them
    top: int  # the index's serial before
    changes: list[Change]

    @property
    def new_top(self) -> int:
        return max([self.top, *(c.serial for c in self.changes)])


def _plan(dsn: str, count: int, seed: int) -> tuple[Plan, list[Change]]:
    """The database's packages as PyPI lists them, COUNT changes to make on PyPI, and COUNT
    other projects changed the same way (for the database-only reference)."""
    with psycopg.connect(dsn) as conn:
        listing = [
            (str(key), str(display), int(serial))
            for key, display, serial in conn.execute(
                "SELECT package, display_name, serial FROM packages WHERE NOT removed"
                " ORDER BY package"
            )
        ]
        row = conn.execute(
            "SELECT greatest(coalesce(max(serial), 0), (SELECT pypi_serial FROM configuration))"
            " FROM packages"
        ).fetchone()
        top = int(row[0]) if row else 0
        # operators' skips keep a project out of the queue: the new releases must be queued
        buildable = [
            str(key) for (key,) in conn.execute("SELECT package FROM packages WHERE skip = ''")
        ]
        displays = {key: display for key, display, _ in listing}
        candidates = sorted(set(buildable) & displays.keys())
        count = min(count, len(candidates) // 2)
        chosen = random.Random(seed).sample(candidates, 2 * count)
        plans = []
        for part, first in ((chosen[:count], top + 1), (chosen[count:], top + count + 1)):
            changes = [
                Change(key, displays[key], first + n, removed=n % 100 == 99, new_release=n % 2 == 0)
                for n, key in enumerate(part)
            ]
            by_key = {change.key: change for change in changes}
            for key, version, released, requires_python, has_sdist, yanked in conn.execute(
                "SELECT package, version, released, requires_python, has_sdist, yanked"
                " FROM versions WHERE package = ANY(%s) AND NOT removed ORDER BY version_id",
                (list(by_key),),
            ):
                by_key[key].versions.append((version, released, requires_python, has_sdist, yanked))
            plans.append(changes)
    return Plan(listing, top, plans[0]), plans[1]


def _root(listing: list[tuple[str, str, int]], serial: int, *, gzipped: bool) -> bytes:
    projects = [{"name": display, "_last-serial": number} for _, display, number in listing]
    document = {"meta": {"api-version": "1.1", "_last-serial": serial}, "projects": projects}
    body = json.dumps(document).encode()
    return gzip.compress(body, compresslevel=6) if gzipped else body


def _changed_listing(plan: Plan) -> list[tuple[str, str, int]]:
    by_key = {change.key: change for change in plan.changes}
    listing = []
    for key, display, serial in plan.listing:
        change = by_key.get(key)
        if change is None:
            listing.append((key, display, serial))
        elif not change.removed:
            listing.append((key, display, change.serial))
    return listing


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _releases(change: Change, now: datetime) -> dict[str, list[dict[str, Any]]]:
    """PyPI's ``releases``: each version's files, which say what the database holds of it."""
    versions = list(change.versions)
    if change.new_release:
        versions.append((NEW_VERSION, now, None, True, False))
    releases: dict[str, list[dict[str, Any]]] = {}
    stem = change.key.replace("-", "_")
    for version, released, requires_python, has_sdist, yanked in versions:
        # the sdist where the fill says the farm recorded it (what changes is what is measured)
        kinds = [("bdist_wheel", f"{fill_db.SDIST_HOST}{stem}-{version}-py3-none-any.whl")]
        if has_sdist:
            kinds.append(("sdist", fill_db.sdist_url(change.key, version)))
        releases[version] = [
            {
                "filename": url.rsplit("/", 1)[1],
                "packagetype": kind,
                "python_version": "source" if kind == "sdist" else "py3",
                "requires_python": requires_python,
                "size": 12345,
                "digests": {"sha256": fill_db.SDIST_SHA256},
                "url": url,
                "upload_time": _iso(released)[:19],
                "upload_time_iso_8601": _iso(released),
                "yanked": yanked,
                "yanked_reason": fill_db.YANKED_REASON if yanked else None,
            }
            for kind, url in kinds
        ]
    return releases


def _documents(plan: Plan) -> dict[str, bytes]:
    """The JSON API's answer for every project that changes and is still listed."""
    now = datetime.now(UTC)
    documents = {}
    for change in plan.changes:
        if change.removed:
            continue
        document = {
            "info": {
                "name": change.display,
                "summary": f"A synthetic project, changed at serial {change.serial}",
                "description": DESCRIPTION,
                "description_content_type": "text/markdown",
                "version": NEW_VERSION if change.new_release else "",
            },
            "last_serial": change.serial,
            "releases": _releases(change, now),
        }
        documents[change.key] = json.dumps(document).encode()
    return documents


ARCHIVED_EVERY = 100  # one changed project in this many is archived (PEP 792)


def _archived(plan: Plan) -> list[str]:
    """The changed projects whose simple page says they are archived."""
    return [c.key for c in plan.changes if not c.removed][::ARCHIVED_EVERY]


def _simple_pages(plan: Plan) -> dict[str, bytes]:
    """Each changed project's simple page as PyPI serves it (PEP 691 JSON, api-version 1.4):
    its files, and for some a project-status."""
    now = datetime.now(UTC)
    archived = set(_archived(plan))
    pages = {}
    for change in plan.changes:
        if change.removed:
            continue
        releases = _releases(change, now)
        page: dict[str, Any] = {
            "meta": {"api-version": "1.4", "_last-serial": change.serial},
            "name": change.key,
            "files": [
                {
                    "filename": f["filename"],
                    "url": f["url"],
                    "hashes": f["digests"],
                    "requires-python": f["requires_python"],
                    "size": f["size"],
                    "upload-time": f["upload_time_iso_8601"],
                    "yanked": f["yanked_reason"] or f["yanked"],
                }
                for files in releases.values()
                for f in files
            ],
            "versions": list(releases),
        }
        if change.key in archived:
            page["project-status"] = {"status": "archived", "reason": "synthetic"}
        pages[change.key] = json.dumps(page).encode()
    return pages


class Index:
    """What the index serves now; swapped whole, so every answer is of one state."""

    def __init__(self, root: bytes, serial: int, *, gzipped: bool) -> None:
        self.gzipped = gzipped
        self.root_requests: list[float] = []  # wall-clock arrival of each root request
        self.project_requests = 0
        self.swap(root, serial, {}, {})

    def swap(
        self,
        root: bytes,
        serial: int,
        documents: dict[str, tuple[bytes, int]],
        pages: dict[str, tuple[bytes, int]],
    ) -> None:
        headers = {"Content-Type": SIMPLE_JSON, "X-PyPI-Last-Serial": str(serial)}
        if self.gzipped:
            headers["Content-Encoding"] = "gzip"
        answers = {"/simple/": _response("200 OK", root, headers)}
        for key, (body, number) in documents.items():
            answers[f"/pypi/{key}/json"] = _response(
                "200 OK",
                body,
                {"Content-Type": "application/json", "X-PyPI-Last-Serial": str(number)},
            )
        for key, (body, number) in pages.items():
            answers[f"/simple/{key}/"] = _response(
                "200 OK", body, {"Content-Type": SIMPLE_JSON, "X-PyPI-Last-Serial": str(number)}
            )
        self.answers = answers  # one assignment: a request sees the old state or the new

    def answer(self, path: str) -> bytes:
        """The whole HTTP response to a GET of *path* (called on the server's thread)."""
        if path == "/simple/":
            self.root_requests.append(time.time())
        elif path.startswith("/pypi/"):
            self.project_requests += 1
        return self.answers.get(path, NOT_FOUND)


def _response(status: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


NOT_FOUND = _response("404 Not Found", b"", {"Content-Type": "text/plain"})


class _IndexProtocol(asyncio.Protocol):
    """HTTP/1.1 GETs, keep-alive, each answer made whole when the index is swapped.

    The index stands in for PyPI, whose CPU is not the master's: the standard library's
    threaded server spent ~0.35 ms of these 2 cores on each answer, a fifth of a core while
    Cloud Gazer fetched, and its fetches waited on it.
    """

    def __init__(self, index: Index) -> None:
        self.index = index
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # headers and body leave in one write anyway; no Nagle delay
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            _, target, _ = request_line.split(" ", 2)
            self.transport.write(self.index.answer(target.split("?")[0]))
            if any(h.lower().replace(" ", "") == "connection:close" for h in header_lines):
                self.transport.close()
                return


@contextmanager
def serve(index: Index) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: _IndexProtocol(index), "127.0.0.1", 0, backlog=128)
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


# -- the references -----------------------------------------------------------------------------


def _fetch_and_parse(base: str, gzipped: bool) -> int:
    """The network's part and a bare parse: what no follower can do without."""
    request = urllib.request.Request(f"{base}/simple/", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=120) as response:
        data = response.read()
    document = json.loads(gzip.decompress(data) if gzipped else data)
    return len(document["projects"])


def _bare_gets(base: str, keys: list[str]) -> int:
    """Every project's JSON document and simple page once, in turn, on one keep-alive
    connection; the bytes read."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    total = 0
    try:
        for key in keys:
            for path in (f"/pypi/{key}/json", f"/simple/{key}/"):
                connection.request("GET", path)
                response = connection.getresponse()
                total += len(response.read())
    finally:
        connection.close()
    return total


def _database_reference(dsn: str, changes: list[Change]) -> float:
    """The database's own writes for *changes*, on one connection: no HTTP, no Oracle."""
    now = datetime.now(UTC)
    calls = []
    for change in changes:
        if change.removed:
            calls.append((change.key, None))
            continue
        versions = [
            _as_listed(change.key, v, released, requires_python, has_sdist, yanked)
            for v, released, requires_python, has_sdist, yanked in change.versions
        ]
        if change.new_release:
            versions.append(_as_listed(change.key, NEW_VERSION, now, None, True, False))
        calls.append((change.key, (change.display, change.serial, versions)))
    database = Database(dsn)
    try:
        started = time.perf_counter()
        for key, details in calls:
            if details is None:
                database.remove_project(key)
            else:
                display, serial, versions = details
                database.set_project(key, display, serial, "changed", DESCRIPTION, versions)
        return time.perf_counter() - started
    finally:
        database.close()


def _as_listed(
    key: str,
    version: str,
    released: datetime,
    requires_python: str | None,
    has_sdist: bool,
    yanked: bool,
) -> ProjectVersion:
    """*version* as the synthetic PyPI lists it, as Cloud Gazer would record it."""
    return ProjectVersion(
        version,
        released,
        requires_python,
        has_sdist,
        yanked,
        "",
        yanked_reason=fill_db.YANKED_REASON if yanked else None,
        sdist_url=fill_db.sdist_url(key, version) if has_sdist else "",
        sdist_sha256=fill_db.SDIST_SHA256 if has_sdist else "",
    )


# -- the master ---------------------------------------------------------------------------------


def _master_main(config: MasterConfig, log_path: str) -> None:
    """The master process: PiwMaster in its main thread, so SIGTERM stops it cleanly."""
    logging.basicConfig(
        level=logging.INFO,
        format=LOG_FORMAT,
        handlers=[LazyFileHandler(log_path, encoding="utf-8")],
        force=True,
    )
    logging.getLogger("piwheels.cloud_gazer").setLevel(logging.DEBUG)
    sys.exit(PiwMaster(config, follow_pypi=True).run())


class MasterLog:
    """The master's log file, read as it grows: (wall-clock time, line) of Cloud Gazer's lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines: list[tuple[float, str]] = []

    def read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        for line in data[:complete].decode(errors="replace").splitlines():
            try:
                # the master's log is in local time, and only compared with itself
                stamp = datetime.strptime(line[:23], STAMP_FORMAT).timestamp()  # noqa: DTZ007
            except ValueError:
                continue
            self.lines.append((stamp, line))

    def wait_for(self, text: str, process: Any, *, after: float = 0.0, timeout: float) -> float:
        """The time of the first line containing *text* logged at or after *after*."""
        deadline = time.monotonic() + timeout
        while True:
            for stamp, line in self.lines:
                if stamp >= after and text in line:
                    return stamp
            if not process.is_alive():
                raise RuntimeError(f"the master exited ({process.exitcode}); see {self.path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} in the master's log within {timeout}s")
            time.sleep(0.05)
            self.read()


# -- checking what was recorded -----------------------------------------------------------------


def _outstanding(conn: psycopg.Connection[Any], plan: Plan) -> dict[str, int]:
    """How many of the changes the database does not show yet, by kind (all 0: done)."""
    listed = [c for c in plan.changes if not c.removed]
    new = [c.key for c in listed if c.new_release]
    archived = _archived(plan)
    row = conn.execute(
        "SELECT"
        " (SELECT count(*) FROM unnest(%(keys)s::text[], %(serials)s::bigint[]) AS c(k, s)"
        "   LEFT JOIN packages p ON p.package = c.k AND p.serial = c.s AND NOT p.removed"
        "   WHERE p.package IS NULL),"
        " (SELECT count(*) FROM unnest(%(gone)s::text[]) AS g(k)"
        "   LEFT JOIN packages p ON p.package = g.k AND p.removed WHERE p.package IS NULL),"
        " %(new_count)s - (SELECT count(*) FROM versions"
        "   WHERE package = ANY(%(new)s) AND version = %(version)s AND NOT removed),"
        " %(new_count)s - (SELECT count(DISTINCT v.package) FROM build_queue q"
        "   JOIN versions v USING (version_id)"
        "   WHERE v.package = ANY(%(new)s) AND v.version = %(version)s),"
        " %(archived_count)s - (SELECT count(*) FROM packages"
        "   WHERE package = ANY(%(archived)s) AND status = 'archived')",
        {
            "keys": [c.key for c in listed],
            "serials": [c.serial for c in listed],
            "gone": [c.key for c in plan.changes if c.removed],
            "new": new,
            "new_count": len(new),
            "version": NEW_VERSION,
            "archived": archived,
            "archived_count": len(archived),
        },
    ).fetchone()
    assert row is not None
    kinds = ("serials", "removals", "new releases", "queued", "statuses")
    return dict(zip(kinds, map(int, row), strict=True))


def _pypi_serial(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pypi_serial FROM configuration").fetchone()
    return int(row[0]) if row else 0


# -- the benchmark ------------------------------------------------------------------------------


def run(sizes: Sizes, *, data_dir: Path = fill_db.BENCH_PG) -> list[Row]:
    fill_sizes = fill_db.Sizes.of(sizes)
    # A server another benchmark is using is left running for it.
    was_running = EmbeddedPostgres(data_dir).is_running()
    server = fill_db.bench_server(data_dir, durable=bool(sizes["durable"]))
    try:
        template = fill_db.filled_database(server, fill_sizes, log=_note)
        dsn = fill_db.scratch_copy(server, template, SCRATCH)
        # the copy's gigabytes on their way to disk would hold up every commit measured
        os.sync()
        try:
            with tempfile.TemporaryDirectory(prefix="bench-gazer-") as work:
                return _measure(sizes, fill_sizes, dsn, Path(work), _postmaster(data_dir))
        finally:
            server.drop_database(SCRATCH)
    finally:
        if not was_running:
            server.stop()


def _measure(
    sizes: Sizes, fill_sizes: fill_db.Sizes, dsn: str, work: Path, postmaster: int
) -> list[Row]:
    gzipped = bool(sizes["gzip"])
    repeat = max(1, int(sizes["repeat"]))
    started = time.perf_counter()
    plan, others = _plan(dsn, int(sizes["changes"]), fill_sizes.seed)
    before = _root(plan.listing, plan.top, gzipped=gzipped)
    after = _root(_changed_listing(plan), plan.new_top, gzipped=gzipped)
    documents = _documents(plan)
    pages = _simple_pages(plan)
    removed = sum(change.removed for change in plan.changes)
    new_releases = sum(change.new_release and not change.removed for change in plan.changes)
    _note(
        f"index: {len(plan.listing):,} projects listed ({len(before) / 1e6:.1f} MB"
        f"{' gzipped' if gzipped else ''}), serial {plan.top:,}; then {len(plan.changes):,}"
        f" changes: {len(documents):,} listed with a higher serial ({new_releases:,} with a new"
        f" release, {sum(map(len, documents.values())) / len(documents) / 1e3:.1f} kB of JSON"
        f" each on average), {removed:,} removed; made in {time.perf_counter() - started:.0f}s"
    )
    index = Index(before, plan.top, gzipped=gzipped)
    changed = {c.key: (documents[c.key], c.serial) for c in plan.changes if not c.removed}
    changed_pages = {key: (pages[key], serial) for key, (_, serial) in changed.items()}
    with serve(index) as base:
        # the references first, with nothing else of ours running
        fetch_parse = min(_timed(lambda: _fetch_and_parse(base, gzipped)) for _ in range(repeat))
        index.swap(before, plan.top, changed, changed_pages)
        keys = list(changed)
        gets = _timed(lambda: _bare_gets(base, keys))
        index.swap(before, plan.top, {}, {})
        index.root_requests.clear()
        index.project_requests = 0
        _note(
            f"references: fetch + json.loads {fetch_parse:.2f}s;"
            f" {2 * len(keys):,} keep-alive GETs {gets:.2f}s"
        )
        config = master_config(
            fill_db.master_dsn(dsn),
            work,
            list(fill_sizes.abis),
            pypi_simple=f"{base}/simple/",
            pypi_json=f"{base}/pypi",
            pypi_interval=float(sizes["interval"]),
        )
        figures = _against_master(
            config,
            dsn,
            work / "master.log",
            index,
            plan,
            repeat,
            (after, changed, changed_pages),
            postmaster,
        )
    database_only = _database_reference(fill_db.master_dsn(dsn), others)
    _note(f"reference: the database's set_project for {len(others):,} others {database_only:.2f}s")
    return _rows(sizes, figures, fetch_parse, gets, database_only, len(plan.listing))


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@dataclass
class Figures:
    first_look: float
    steady_looks: list[float]
    noticed: float  # seconds from the changed list's request to Cloud Gazer's line about it
    applied: float  # seconds from that line to everything recorded
    outstanding: dict[str, int]
    fetched: int  # project documents Cloud Gazer asked for
    cpu: CpuUse  # from the changed list's line to PyPI's serial recorded


@dataclass
class CpuSample:
    """CPU seconds used so far, by whom (see :func:`_cpu_sample`)."""

    master: float
    fetch: float  # the master's fetch processes
    postgres: float  # the server's processes, its backends included
    machine: float  # every CPU's busy time


@dataclass
class CpuUse:
    """What each used between two samples *seconds* apart."""

    master: float
    fetch: float
    postgres: float
    rest: float  # the rest of the machine: the synthetic PyPI's server, the system
    seconds: float

    @classmethod
    def between(cls, first: CpuSample, last: CpuSample, seconds: float) -> CpuUse:
        master = last.master - first.master
        fetch = last.fetch - first.fetch
        postgres = last.postgres - first.postgres
        rest = (last.machine - first.machine) - master - fetch - postgres
        return cls(master, fetch, postgres, max(rest, 0.0), seconds)


def _postmaster(data_dir: Path) -> int:
    """The server's postmaster, from the first line of its postmaster.pid."""
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def _cpu_sample(master: int, postmaster: int) -> CpuSample:
    """The CPU time so far of the master, its fetch processes and the PostgreSQL server, from
    /proc (a process that has ended is missing: the fetch processes and backends last the run),
    and the machine's busy time from /proc/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"master": 0, "fetch": 0, "postgres": 0}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            command = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        pid, parent, ticks = int(entry.name), int(fields[1]), int(fields[11]) + int(fields[12])
        if pid == master:
            used["master"] += ticks
        elif parent == master and b"fetch_workers" in command:
            used["fetch"] += ticks
        elif postmaster in (pid, parent):
            used["postgres"] += ticks
    first_line = Path("/proc/stat").read_text().split("\n", 1)[0]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, first_line.split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return CpuSample(
        used["master"] / tick, used["fetch"] / tick, used["postgres"] / tick, busy / tick
    )


def _against_master(
    config: MasterConfig,
    dsn: str,
    log_path: Path,
    index: Index,
    plan: Plan,
    repeat: int,
    after: tuple[bytes, dict[str, tuple[bytes, int]], dict[str, tuple[bytes, int]]],
    postmaster: int,
) -> Figures:
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=_master_main, args=(config, str(log_path)), name="bench-master")
    log = MasterLog(log_path)
    process.start()
    assert process.pid is not None  # started
    try:
        begun = log.wait_for("Cloud Gazer   INFO    started", process, timeout=300)
        first = log.wait_for("no changes among", process, after=begun, timeout=600) - begun
        settled = wait_until_idle(dsn)
        _note(f"master (pid {process.pid}) settled after {settled:.0f}s of start-up work")
        # Each steady look: from its request for the list to its "no changes" line.
        looks: list[float] = []
        mark = time.time()
        while len(looks) < repeat:
            done = log.wait_for("no changes among", process, after=mark, timeout=600)
            asked = max((t for t in index.root_requests if t <= done), default=mark)
            if asked >= mark:
                looks.append(done - asked)
            mark = done + 0.001
        gone = [c.key for c in plan.changes if c.removed]
        _note(f"swapping in the changed list: {len(plan.changes):,} changes, {len(gone)} removed")
        swapped = time.time()
        index.swap(after[0], plan.new_top, after[1], after[2])
        noticed_at = log.wait_for("projects changed and", process, after=swapped, timeout=600)
        # a few tens of ms after the line (the log is polled): the CPU of applying the changes
        first_cpu, first_cpu_at = _cpu_sample(process.pid, postmaster), time.time()
        asked = min(t for t in index.root_requests if t >= swapped)
        sample = partial(_cpu_sample, process.pid, postmaster)
        outstanding, done_at, (last_cpu, last_cpu_at) = _wait_recorded(dsn, plan, process, sample)
        cpu = CpuUse.between(first_cpu, last_cpu, last_cpu_at - first_cpu_at)
        fetched = index.project_requests
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
            process.join(60)
        if process.is_alive():
            process.kill()
            process.join()
    log.read()
    _report_log(log_path)
    return Figures(
        first, looks, noticed_at - asked, done_at - noticed_at, outstanding, fetched, cpu
    )


def _wait_recorded(
    dsn: str, plan: Plan, process: Any, sample: Callable[[], CpuSample]
) -> tuple[dict[str, int], float, tuple[CpuSample, float]]:
    """Poll until the database shows every change; (what is still missing, when it was seen,
    and *sample*'s CPU use with its time as PyPI's serial was seen recorded).

    PyPI's serial is recorded once Cloud Gazer has been through every change, so it is polled
    (cheaply, often) first; then every change is checked, and checked again until all are
    there, as a project whose fetch failed is fetched at the next look.
    """
    deadline = time.monotonic() + 600
    with psycopg.connect(dsn, autocommit=True) as conn:
        while _pypi_serial(conn) < plan.new_top:
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the changes were not recorded (see the master's log)")
            time.sleep(0.02)
        seen = time.time()
        cpu = (sample(), seen)  # before the checks below, which are the benchmark's own work
        outstanding = _outstanding(conn, plan)
        while any(outstanding.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
            seen = time.time()
            outstanding = _outstanding(conn, plan)
    return outstanding, seen, cpu


# The synthetic database's files exist only as records; the Scribe says so for each page.
SYNTHETIC = "files are recorded but missing from"


def _report_log(log_path: Path) -> None:
    lines = log_path.read_text(errors="replace").splitlines()
    recorded = sum(" recorded " in line and "Cloud Gazer" in line for line in lines)
    warnings = [line for line in lines if "Cloud Gazer" in line and " WARNING " in line]
    errors = [
        line
        for line in lines
        if (" ERROR " in line or " CRITICAL " in line) and SYNTHETIC not in line
    ]
    _note(
        f"master log: {recorded:,} projects recorded by Cloud Gazer, {len(warnings)} warnings"
        f" from it, {len(errors)} errors"
    )
    for line in warnings[:5] + errors[:10]:
        _note(f"  master: {line}")
    for line in lines:
        busy = "Oracle" in line and " busy " in line
        if busy or ("Cloud Gazer" in line and "looked in" in line):
            _note(f"  master: {line}")


def _rows(
    sizes: Sizes, figures: Figures, fetch_parse: float, gets: float, database: float, listed: int
) -> list[Row]:
    changes = int(sizes["changes"])
    steady = min(figures.steady_looks)
    complete = not any(figures.outstanding.values())
    _note(
        f"looks at the whole list: first {figures.first_look:.2f}s, then"
        f" {', '.join(f'{t:.2f}s' for t in figures.steady_looks)};"
        f" the changed list noticed {figures.noticed:.2f}s after it was asked for;"
        f" {figures.fetched:,} project documents fetched; not recorded: {figures.outstanding}"
    )
    applying = f"{changes:,} changes applied (noticed -> all in the database)"
    return [
        Row(
            f"one look at PyPI's list, {listed:,} projects, nothing changed",
            steady,
            fetch_parse,
            "s",
            "fetch + bare json.loads of the same list",
            "< 60 s",
            steady < 60,
        ),
        Row(
            "  the first look at start (reads the serials too)",
            figures.first_look,
            fetch_parse,
            "s",
            "fetch + bare json.loads of the same list",
            "< 60 s",
            figures.first_look < 60,
        ),
        Row(
            applying,
            figures.applied,
            gets,
            "s",
            f"{2 * changes:,} bare GETs of the same documents and pages, one connection",
            "< 10 s, every change recorded",
            figures.applied < 10 and complete,
        ),
        Row(
            f"  {applying}",
            figures.applied,
            database,
            "s",
            f"Database.set_project for {changes:,} others, one connection, no HTTP",
        ),
        *_cpu_rows(figures.cpu, changes),
        Row(
            "  changes found in the database afterwards",
            changes - sum(figures.outstanding.values()),
            changes,
            "changes",
            "changes made on the index",
            "all",
            complete,
        ),
    ]


def _cpu_rows(cpu: CpuUse, changes: int) -> list[Row]:
    """Who used the two cores while the changes were applied: each one's CPU seconds beside
    all the machine had in that time (ratio: its share)."""
    cores = os.cpu_count() or 1
    capacity = cpu.seconds * cores
    reference = f"the {cpu.seconds:.1f} s x {cores} cores the machine had meanwhile"
    used = [
        ("PostgreSQL", cpu.postgres),
        ("the fetch processes", cpu.fetch),
        ("the master", cpu.master),
        ("the rest (this benchmark's index, the system)", cpu.rest),
    ]
    _note(
        "CPU per change while applying them: "
        + ", ".join(f"{who} {seconds / changes * 1000:.2f} ms" for who, seconds in used)
    )
    return [
        Row(f"  CPU meanwhile: {who}", seconds, capacity, "s", reference) for who, seconds in used
    ]


def main(argv: Any = None) -> None:
    standalone(__doc__ or "", SIZES, QUICK, run, argv)


if __name__ == "__main__":
    main()
