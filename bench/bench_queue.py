"""The build queue at PyPI's scale: reading it, recomputing it, and moving it on.

On a synthetic PyPI made by ``fill_db.py`` (1,000,000 packages, 8,000,000 versions, 5,000,000
builds on 4 ABIs by default; a copy of the cached template, so nothing here changes it), through
:class:`piwheels.db.database.Database` on the master's own role, as the Oracles call it:

* ``get_queue(queue_head)``: what the Architect does at every refresh (the head of each ABI's
  queue and each queue's length). Target: under 5 s; the original piwheels' queue view takes
  74-83 s on such a database and is recomputed hourly;
* ``requeue_all()``: the full recomputation (after the set of ABIs changes), once with nothing
  to change and once from an empty queue. No target: it runs when an operator changes the ABIs;
* a new version recorded by ``set_project`` (as Cloud Gazer does: the project's every version
  plus the new one) until it is at the head of its queue in ``get_queue``, for a new project,
  the median project and the biggest. Target: within seconds, counting the Architect's refresh
  interval (5 s) on top;
* ``log_build``: recording one build with its wheel and log. Target: under 2 ms (the original
  takes 0.9 ms);
* an operator's priority (``set_priority``, as ``piw-add --priority`` asks) on the biggest
  project until its newest queued version is at the head of its queue in ``get_queue``;
* the order itself (migration 0010), on a simulated campaign in a database of its own: many
  busy projects with long histories (pre-releases, backports) that keep releasing, and many
  quiet ones (one old release, now and then a new one), built by a few slaves on one ABI with
  build times drawn per project. Measured: the share of build-seconds spent on each project's
  newest release (its newest final release, or newest pre-release if it has none; worked out
  apart from the database, with packaging) until every project's newest release has been
  tried, and how long that took. Target: >= 90%. Reference: the same campaign with the order
  before migration 0010, newest upload first across all projects.

References, measured in the same run: a ``SELECT 1`` round trip for reads; a bare single-row
INSERT (one commit) for writes; for the recomputation, copying every version's id and release
time into a new table (the least a full recomputation must read and write); for the campaign,
the old order.

By default the server runs with fsync and synchronous commit on, as a production database would
(``durable=0`` turns them off); the fill itself always runs with them off.

Run: ``python bench/bench_queue.py [--quick] [--packages N] [--versions N] [--builds N] ...``.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fill_db
import psycopg
from harness import Row, Sizes, standalone
from packaging.version import Version

from piwheels.abis import covers_from, sorted_abis
from piwheels.db.database import Database
from piwheels.db.migrate import migrate
from piwheels.db.project_rows import ProjectUpdate, ProjectVersion
from piwheels.records.builds import BuildResult, FileState

SIZES: dict[str, int | float] = {
    "packages": 1_000_000,
    "versions": 8_000_000,
    "builds": 5_000_000,
    "none_fraction": 0.4,
    "queue_head": 1000,  # MasterConfig.queue_head: entries per ABI the Architect reads
    "repeat": 5,
    "logged": 2000,  # log_build calls timed
    "durable": 1,
    # the simulated campaign
    "campaign_busy": 200,  # projects with long histories that keep releasing
    "campaign_quiet": 1000,  # projects with one old release (a few, several)
    "campaign_slaves": 2,
}
QUICK: dict[str, int | float] = {
    "packages": 1000,
    "versions": 8000,
    "builds": 5000,
    "repeat": 1,
    "logged": 50,
    "campaign_busy": 8,
    "campaign_quiet": 30,
}

ARCHITECT_INTERVAL = 5.0  # MasterConfig.queue_interval: the Architect's refresh
SCRATCH = "bench_queue"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class QueueBench:
    """The measurements, on one scratch copy of the filled database."""

    def __init__(self, superuser_dsn: str, sizes: Sizes) -> None:
        self.sizes = sizes
        self.admin = psycopg.connect(superuser_dsn, autocommit=True)
        self.db = Database(fill_db.master_dsn(superuser_dsn))
        self.repeat = int(sizes["repeat"])
        self.head = int(sizes["queue_head"])
        # a plain logged table for the write reference: one row, one commit, no index but a key
        self.admin.execute("CREATE TABLE bench_reference (id bigserial PRIMARY KEY, note text)")

    def close(self) -> None:
        self.db.close()
        self.admin.close()

    # -- references ----------------------------------------------------------------------------

    def select_one(self, count: int = 200) -> float:
        conn = self.db.conn
        return statistics.median(
            _timed(lambda: conn.execute("SELECT 1").fetchone()) for _ in range(count)
        )

    def bare_insert(self) -> float:
        return _timed(lambda: self.admin.execute("INSERT INTO bench_reference (note) VALUES ('x')"))

    def copy_versions(self) -> float:
        self.admin.execute("DROP TABLE IF EXISTS bench_copy")
        return _timed(
            lambda: self.admin.execute(
                "CREATE TABLE bench_copy AS SELECT version_id, released FROM versions"
            )
        )

    # -- the queue -----------------------------------------------------------------------------

    def get_queue(self) -> float:
        self.db.get_queue(self.head)  # warm: the Architect reads it every few seconds
        return statistics.median(
            _timed(lambda: self.db.get_queue(self.head)) for _ in range(max(3, self.repeat))
        )

    def queue_lengths(self) -> float:
        """The lengths half of get_queue alone (kept by the schema since migration 0004)."""
        conn = self.db.conn
        return statistics.median(
            _timed(lambda: conn.execute("SELECT * FROM queue_lengths()").fetchall())
            for _ in range(max(3, self.repeat))
        )

    def count_queue(self) -> float:
        """What get_queue did for the lengths before migration 0004: count the whole queue."""
        conn = self.db.conn
        return statistics.median(
            _timed(
                lambda: conn.execute(
                    "SELECT abi_tag, count(*) FROM build_queue GROUP BY abi_tag"
                ).fetchall()
            )
            for _ in range(max(3, self.repeat))
        )

    def requeue_all(self, *, from_empty: bool) -> float:
        if from_empty:
            self.admin.execute("TRUNCATE build_queue")
        took = _timed(lambda: self.db.conn.execute("SELECT requeue_all()"))
        # what requeue_all leaves behind, for the next figure (autovacuum's work, done now)
        self.admin.execute("VACUUM ANALYZE build_queue")
        return took

    # -- a new version -------------------------------------------------------------------------

    def sample_packages(self) -> list[tuple[str, str]]:
        """(label, package): the median project by versions, and the biggest."""
        row = self.admin.execute(
            "WITH c AS (SELECT package, count(*) AS n FROM versions JOIN packages p"
            " USING (package) WHERE p.skip = '' AND NOT p.removed GROUP BY package)"
            " SELECT (SELECT package FROM c ORDER BY n, package"
            "   OFFSET (SELECT count(*) / 2 FROM c) LIMIT 1),"
            " (SELECT package FROM c ORDER BY n DESC, package LIMIT 1)"
        ).fetchone()
        assert row is not None
        return [("median project", row[0]), ("biggest project", row[1])]

    def new_version(self, package: str | None, serial: int) -> tuple[float, int]:
        """Seconds from set_project to the version at its queue's head; versions sent."""
        if package is None:
            package = f"bench-new-{serial}"
            versions: list[ProjectVersion] = []
            display_name, summary, description = package, "", ""
        else:
            row = self.admin.execute(
                "SELECT display_name, summary, description FROM packages WHERE package = %s",
                (package,),
            ).fetchone()
            assert row is not None
            display_name, summary, description = row
            versions = [
                ProjectVersion(*v)
                for v in self.admin.execute(
                    "SELECT version, released, requires_python, has_sdist, yanked, skip"
                    " FROM versions WHERE package = %s AND NOT removed ORDER BY version_id",
                    (package,),
                )
            ]
        new = f"9999.{serial}"
        versions.append(ProjectVersion(new, datetime.now(UTC), None, True, False, ""))
        start = time.perf_counter()
        self.db.set_project(package, display_name, 10**9 + serial, summary, description, versions)
        heads = self.db.get_queue(self.head).heads
        took = time.perf_counter() - start
        lowest = next(iter(heads))
        # a project's newest release, and the newest upload: first of its queue
        if heads[lowest][:1] != [(package, new)]:
            raise AssertionError(f"{package} {new} is not at the head of the {lowest} queue")
        return took, len(versions)

    # -- an operator's priority ----------------------------------------------------------------

    def priority(self, package: str) -> tuple[float, int]:
        """Seconds from set_priority on *package* to its newest queued version at the head of
        its queue; and how many of its versions were moved. The priority is taken back after."""
        abi, newest = self.admin.execute(
            "SELECT q.abi_tag, v.version FROM build_queue q JOIN versions v USING (version_id)"
            " JOIN build_abis a USING (abi_tag) WHERE v.package = %s"
            " ORDER BY a.python_order, q.rank LIMIT 1",
            (package,),
        ).fetchone() or (None, None)
        if abi is None:
            raise AssertionError(f"nothing of {package} is queued")
        row = self.admin.execute(
            "SELECT count(*) FROM build_queue q JOIN versions v USING (version_id)"
            " WHERE v.package = %s",
            (package,),
        ).fetchone()
        start = time.perf_counter()
        self.db.set_priority(package, None, True)
        heads = self.db.get_queue(self.head).heads
        took = time.perf_counter() - start
        self.db.set_priority(package, None, False)
        if heads[abi][:1] != [(package, newest)]:
            raise AssertionError(f"{package} {newest} is not at the head of the {abi} queue")
        return took, int(row[0]) if row else 0

    # -- recording builds ----------------------------------------------------------------------

    def log_builds(self, count: int) -> tuple[list[float], list[float]]:
        """Times of log_build for *count* queued builds, and of as many bare INSERTs."""
        heads = self.db.get_queue(max(self.head, count)).heads
        todo = [(pkg, ver, abi) for abi, entries in heads.items() for pkg, ver in entries]
        measured, reference = [], []
        for n, (package, version, abi) in enumerate(todo[:count]):
            result = _build_result(package, version, abi, none=n % 5 < 2)
            reference.append(self.bare_insert())
            measured.append(_timed(lambda: self.db.log_build(1, package, version, abi, result)))  # noqa: B023
        return measured, reference


# -- a simulated campaign ------------------------------------------------------------------------

CAMPAIGN_START = datetime(2026, 11, 1, tzinfo=UTC)
CAMPAIGN_ABI = "cp311"
DAY = 86400.0
YEAR = 365 * DAY
# The Architect's picture of the queue in the campaign: the real one reads 1,000 entries, but
# a few slaves never get past the first 100 between two reads, and reading 100 keeps the
# simulation of tens of thousands of builds quick.
CAMPAIGN_HEAD = 100
# The order before migration 0010, for the campaign's reference: newest upload first.
UPLOAD_ORDER = (
    "SELECT v.package, v.version FROM build_queue q JOIN versions v USING (version_id)"
    " WHERE q.abi_tag = %s ORDER BY q.released DESC LIMIT %s"
)


@dataclass
class SimProject:
    """A project of the campaign: every release it makes, before the start and during it."""

    name: str
    releases: list[tuple[float, str]]  # (seconds from the campaign's start, version)
    build_median: float  # seconds

    def listed(self, now: float) -> list[tuple[float, str]]:
        return [(when, version) for when, version in self.releases if when <= now]


def newest_release(versions: list[str]) -> str:
    """A project's newest release: its newest final release, or its newest pre-release if it
    has none (the issue's definition, worked out with packaging, apart from the database)."""
    parsed = [Version(v) for v in versions]
    finals = [v for v in parsed if not v.is_prerelease]
    best = max(finals or parsed)
    return versions[parsed.index(best)]


def _history(rng: random.Random, name: str, count: int, span: float, cadence: float) -> SimProject:
    """A busy project: *count* releases over the *span* seconds before the start, then one
    every *cadence* seconds or so for a year; minor series with release candidates and betas,
    and now and then a backport to the previous series uploaded after the newer one."""
    releases: list[tuple[float, str]] = []
    major, minor, patch = 1, 0, 0
    when = -span
    step = span / count
    while when < YEAR:
        if len(releases) % 12 == 11:  # a new series, often previewed
            minor, patch = minor + 1, 0
            if minor == 10:
                major, minor = major + 1, 0
            if rng.random() < 0.5:
                releases.append((when, f"{major}.{minor}.0b1"))
                when += step * rng.uniform(0.2, 0.6)
            if rng.random() < 0.7:
                releases.append((when, f"{major}.{minor}.0rc1"))
                when += step * rng.uniform(0.2, 0.6)
        releases.append((when, f"{major}.{minor}.{patch}"))
        if minor > 0 and rng.random() < 0.08:  # a backport, uploaded just after
            releases.append((when + 3600, f"{major}.{minor - 1}.{100 + len(releases)}"))
        patch += 1
        when += (step if when < 0 else cadence) * rng.expovariate(1.0)
    return SimProject(name, releases, rng.lognormvariate(5.0, 0.8))  # median ~150 s


def campaign_projects(busy: int, quiet: int, seed: int = 14) -> list[SimProject]:
    """Busy projects with long histories (30-400 releases over up to three years, releasing
    every 3-15 days on), and quiet ones: one release 1-8 years old (a fifth have a few more
    before it; one in fifty releases again during the year)."""
    rng = random.Random(seed)
    projects = []
    for n in range(busy):
        count = int(30 + 370 * rng.random() ** 2)
        span = rng.uniform(1, 3) * YEAR
        projects.append(_history(rng, f"busy-{n}", count, span, rng.uniform(3, 15) * DAY))
    for n in range(quiet):
        when = -rng.uniform(1, 8) * YEAR
        releases = [(when, "1.0")]
        if rng.random() < 0.2:
            releases = [(when - k * 90 * DAY, f"0.{9 - k}") for k in range(3, 0, -1)] + releases
        if rng.random() < 0.02:
            releases.append((rng.uniform(0, 30) * DAY, "1.1"))
        projects.append(SimProject(f"quiet-{n}", releases, rng.lognormvariate(3.7, 0.8)))
    return projects


def _build_seconds(project: SimProject, version: str) -> float:
    """A build's duration: the project's median, varied per version (the same in every run)."""
    digest = hashlib.sha256(f"{project.name} {version}".encode()).digest()
    return project.build_median * (0.6 + 0.8 * digest[0] / 255)


@dataclass
class CampaignResult:
    newest_seconds: float = 0.0  # build-seconds on each project's newest release
    other_seconds: float = 0.0  # on anything else
    finished_at: float = 0.0  # when every project's newest release had been tried
    builds: int = 0
    releases_during: int = 0

    @property
    def share(self) -> float:
        total = self.newest_seconds + self.other_seconds
        return 100.0 * self.newest_seconds / total if total else 0.0


def _project_update(project: SimProject, now: float, serial: int) -> ProjectUpdate:
    versions = [
        ProjectVersion(v, CAMPAIGN_START + timedelta(seconds=when), None, True, False, "")
        for when, v in project.listed(now)
    ]
    return ProjectUpdate(project.name, project.name, serial, "", "", versions)


class Campaign:
    """Follows a campaign until every project's newest release has been handed to a slave.

    Slaves take builds from the head of the queue as the Architect last read it (every
    *refresh* seconds of simulated time), skipping builds in hand or done, as the Slave Driver
    does; each build is recorded when it ends; new releases are recorded as they come, as Cloud
    Gazer does."""

    def __init__(
        self,
        db: Database,
        projects: list[SimProject],
        read_queue: Callable[[], list[tuple[str, str]]],
        refresh: float = ARCHITECT_INTERVAL,
    ) -> None:
        self.db = db
        self.projects = {p.name: p for p in projects}
        self.read_queue = read_queue
        self.refresh = refresh
        self.result = CampaignResult()
        self.serial = 1
        self.arrivals = sorted(
            (when, p.name, v) for p in projects for when, v in p.releases if when > 0.0
        )
        self.newest = {p.name: newest_release([v for _, v in p.listed(0.0)]) for p in projects}
        self.waiting = set(self.newest)  # the projects whose newest release is still untried
        self.handed: set[tuple[str, str]] = set()
        self.picture: list[tuple[str, str]] = []
        self.read_at = -refresh
        self.found = 0  # entries in the last read

    def run(self, slaves: int) -> CampaignResult:
        updates = [_project_update(p, 0.0, self.serial) for p in self.projects.values()]
        for n in range(0, len(updates), 100):
            self.db.set_projects(updates[n : n + 100])
        free: list[tuple[float, int, tuple[str, str] | None]] = [
            (0.0, n, None) for n in range(slaves)
        ]
        while self.waiting and free:
            now, slave, done = heapq.heappop(free)
            self.record_releases(now)
            if done is not None:
                result = _build_result(*done, CAMPAIGN_ABI, none=True)
                self.db.log_build(slave + 1, *done, CAMPAIGN_ABI, result)
            build = self.hand_out(now)
            if build is not None:
                seconds = _build_seconds(self.projects[build[0]], build[1])
                heapq.heappush(free, (now + seconds, slave, build))
            elif (wake := self.wake(now)) is not None:
                heapq.heappush(free, (wake, slave, None))
        if self.waiting:
            raise AssertionError(f"the queue ran dry with newest releases untried: {self.waiting}")
        return self.result

    def record_releases(self, now: float) -> None:
        while self.arrivals and self.arrivals[0][0] <= now:
            when, name, _ = self.arrivals.pop(0)
            self.serial += 1
            self.db.set_projects([_project_update(self.projects[name], when, self.serial)])
            self.result.releases_during += 1
            self.newest[name] = newest_release([v for _, v in self.projects[name].listed(when)])
            if (name, self.newest[name]) not in self.handed:
                self.waiting.add(name)

    def hand_out(self, now: float) -> tuple[str, str] | None:
        if now - self.read_at >= self.refresh:
            self.picture, self.read_at = self.read_queue(), now
            self.found = len(self.picture)
        while self.picture and self.picture[0] in self.handed:
            self.picture.pop(0)
        if not self.picture:
            return None
        package, version = build = self.picture.pop(0)
        self.handed.add(build)
        seconds = _build_seconds(self.projects[package], version)
        self.result.builds += 1
        if self.newest[package] == version:
            self.result.newest_seconds += seconds
            self.waiting.discard(package)
            if not self.waiting:
                self.result.finished_at = now
        else:
            self.result.other_seconds += seconds
        return build

    def wake(self, now: float) -> float | None:
        """When an idle slave asks again: at the next read if the last one found anything (if
        only builds in other slaves' hands), or after the next release; None: never."""
        if self.found:
            return max(self.read_at + self.refresh, now + 1.0)
        if self.arrivals:
            return max(now, self.arrivals[0][0]) + self.refresh
        return None


def campaign(server: Any, sizes: Sizes) -> tuple[CampaignResult, CampaignResult, list[SimProject]]:
    """The campaign twice, each in a database of its own: in the queue's order, and in the
    order before migration 0010 (newest upload first)."""
    projects = campaign_projects(int(sizes["campaign_busy"]), int(sizes["campaign_quiet"]))
    slaves = int(sizes["campaign_slaves"])
    results = []
    for name, old_order in (("bench_campaign", False), ("bench_campaign_ref", True)):
        server.drop_database(name)
        dsn = server.create_database(name)
        migrate(dsn, master_role=fill_db.MASTER_ROLE)
        db = Database(fill_db.master_dsn(dsn))
        try:
            db.set_build_abis(sorted_abis([CAMPAIGN_ABI]))
            head = CAMPAIGN_HEAD
            if old_order:

                def read(db: Database = db, head: int = head) -> list[tuple[str, str]]:
                    rows = db.conn.execute(UPLOAD_ORDER, (CAMPAIGN_ABI, head)).fetchall()
                    return [(p, v) for p, v in rows]

            else:

                def read(db: Database = db, head: int = head) -> list[tuple[str, str]]:
                    return db.get_queue(head).heads[CAMPAIGN_ABI]

            started = time.perf_counter()
            results.append(Campaign(db, projects, read).run(slaves))
            _note(
                f"campaign ({'newest upload first' if old_order else 'the queue'}): "
                f"{results[-1].builds:,} builds, {results[-1].share:.1f}% of build-seconds on "
                f"newest releases, all tried after {results[-1].finished_at / 3600:.1f} h "
                f"({time.perf_counter() - started:.0f} s to simulate)"
            )
        finally:
            db.close()
            server.drop_database(name)
    return results[0], results[1], projects


def _build_result(package: str, version: str, abi: str, *, none: bool) -> BuildResult:
    dist = package.replace("-", "_")
    tags = ("py3", "none", "any") if none else (abi, abi, "linux_armv7l")
    filename = f"{dist}-{version}-{'-'.join(tags)}.whl"
    wheel = FileState(filename, 12345, "ab" * 32, dist, version, *tags, frozenset(), None)
    output = f"Processing {package}-{version}.tar.gz\n" + "building ...\n" * 150
    assert covers_from([filename]) == (300 if none else None)
    return BuildResult(True, timedelta(seconds=42), output, [wheel])


def run(sizes: Sizes, *, data_dir: Path = fill_db.BENCH_PG) -> list[Row]:
    """Fill (or reuse) the database for *sizes*, measure on a copy, stop the server."""
    fill_sizes = fill_db.Sizes.of(sizes)
    server = fill_db.bench_server(data_dir, durable=False)
    try:
        template = fill_db.filled_database(server, fill_sizes, log=_note)
        server = fill_db.bench_server(data_dir, durable=bool(sizes["durable"]))
        started = time.perf_counter()
        dsn = fill_db.scratch_copy(server, template, SCRATCH)
        _note(f"copied {template} to {SCRATCH} in {time.perf_counter() - started:.1f}s")
        bench = QueueBench(dsn, sizes)
        try:
            rows = _measure(bench, sizes)
        finally:
            bench.close()
            server.drop_database(SCRATCH)
        return rows + _campaign_rows(*campaign(server, sizes))
    finally:
        server.stop()


def _campaign_rows(
    measured: CampaignResult, reference: CampaignResult, projects: list[SimProject]
) -> list[Row]:
    busy = sum(1 for p in projects if p.name.startswith("busy"))
    versions = sum(len(p.listed(0.0)) for p in projects)
    _note(
        f"campaign: {busy} busy and {len(projects) - busy} quiet projects, {versions:,} versions"
        f" at the start, {measured.releases_during} releases while the queue's order ran"
        f" ({reference.releases_during} while the old order did)"
    )
    label = f"{len(projects):,} projects, {busy} busy; {versions:,} versions"
    old = "newest upload first, as before migration 0010"
    return [
        Row(
            f"campaign ({label}): share of build-seconds on each project's newest release"
            " until all were tried",
            measured.share,
            reference.share,
            "%",
            old,
            ">= 90%",
            measured.share >= 90.0,
        ),
        Row(
            "campaign: hours until every project's newest release was tried",
            measured.finished_at / 3600,
            reference.finished_at / 3600,
            "h",
            old,
        ),
    ]


def _measure(bench: QueueBench, sizes: Sizes) -> list[Row]:
    rows = []
    select_one = bench.select_one()
    head = bench.head
    get_queue = bench.get_queue()
    rows.append(
        Row(
            f"get_queue({head}) x 4 ABIs: the Architect's refresh",
            get_queue,
            select_one,
            "s",
            "SELECT 1 round trip",
            "< 5 s (original: 74-83 s)",
            get_queue < 5.0,
        )
    )
    lengths = bench.queue_lengths()
    rows.append(
        Row(
            "  of which the queue lengths (queue_lengths())",
            lengths,
            select_one,
            "s",
            "SELECT 1 round trip",
        )
    )
    counted = bench.count_queue()
    rows.append(
        Row(
            "  the lengths by count(*), as before migration 0004",
            counted,
            select_one,
            "s",
            "SELECT 1 round trip",
        )
    )
    _note(
        f"get_queue: {get_queue:.3f}s (lengths {lengths:.4f}s; counting {counted:.3f}s),"
        f" SELECT 1: {select_one:.6f}s"
    )

    copy = bench.copy_versions()
    unchanged = bench.requeue_all(from_empty=False)
    empty = bench.requeue_all(from_empty=True)
    _note(f"requeue_all: {unchanged:.1f}s unchanged, {empty:.1f}s from empty; copy {copy:.1f}s")
    reference = "copy versions (id, released) to a new table"
    rows.append(Row("requeue_all(), nothing to change", unchanged, copy, "s", reference))
    rows.append(Row("requeue_all(), from an empty queue", empty, copy, "s", reference))

    samples: list[tuple[str, str | None]] = [("new project", None), *bench.sample_packages()]
    serial = 0
    for label, package in samples:
        times = []
        versions = 0
        for _ in range(bench.repeat):
            serial += 1
            took, versions = bench.new_version(package, serial)
            times.append(took)
        took = statistics.median(times)
        _note(f"new version of {package or 'a new project'} ({versions} versions): {took:.3f}s")
        rows.append(
            Row(
                f"new version queued: set_project + get_queue, {label} ({versions} versions)",
                took,
                select_one,
                "s",
                "SELECT 1 round trip",
                f"+ {ARCHITECT_INTERVAL:g} s refresh < 10 s",
                took + ARCHITECT_INTERVAL < 10.0,
            )
        )

    biggest = samples[-1][1]
    assert biggest is not None
    times = []
    moved = 0
    for _ in range(bench.repeat):
        took, moved = bench.priority(biggest)
        times.append(took)
    took = statistics.median(times)
    _note(f"priority for {biggest} ({moved} versions queued): {took:.3f}s")
    rows.append(
        Row(
            f"operator priority: set_priority + get_queue, biggest project ({moved} queued)",
            took,
            select_one,
            "s",
            "SELECT 1 round trip",
            f"+ {ARCHITECT_INTERVAL:g} s refresh < 10 s",
            took + ARCHITECT_INTERVAL < 10.0,
        )
    )

    measured, reference = bench.log_builds(int(sizes["logged"]))
    insert = statistics.median(reference)
    median = statistics.median(measured)
    p99 = _percentile(measured, 0.99)
    _note(
        f"log_build: median {median * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms;"
        f" bare INSERT {insert * 1000:.2f} ms"
    )
    rows.append(
        Row(
            "log_build, median",
            median * 1000,
            insert * 1000,
            "ms",
            "bare one-row INSERT, median",
            "< 2 ms (original: 0.9 ms)",
            median < 0.002,
        )
    )
    rows.append(
        Row(
            "log_build, p99",
            p99 * 1000,
            _percentile(reference, 0.99) * 1000,
            "ms",
            "bare one-row INSERT, p99",
        )
    )
    return rows


def main(argv: Any = None) -> None:
    standalone(__doc__ or "", SIZES, QUICK, run, argv)


if __name__ == "__main__":
    main()
