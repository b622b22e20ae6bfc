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
  takes 0.9 ms).

References, measured in the same run: a ``SELECT 1`` round trip for reads; a bare single-row
INSERT (one commit) for writes; for the recomputation, copying every version's id and release
time into a new table (the least a full recomputation must read and write).

By default the server runs with fsync and synchronous commit on, as a production database would
(``durable=0`` turns them off); the fill itself always runs with them off.

Run: ``python bench/bench_queue.py [--quick] [--packages N] [--versions N] [--builds N] ...``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fill_db
import psycopg
from harness import Row, Sizes, standalone

from piwheels.abis import covers_from
from piwheels.db.database import Database, ProjectVersion
from piwheels.states import BuildResult, FileState

SIZES: dict[str, int | float] = {
    "packages": 1_000_000,
    "versions": 8_000_000,
    "builds": 5_000_000,
    "none_fraction": 0.4,
    "queue_head": 1000,  # MasterConfig.queue_head: entries per ABI the Architect reads
    "repeat": 5,
    "logged": 2000,  # log_build calls timed
    "durable": 1,
}
QUICK: dict[str, int | float] = {
    "packages": 1000,
    "versions": 8000,
    "builds": 5000,
    "repeat": 1,
    "logged": 50,
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
        if (package, new) not in heads[lowest]:
            raise AssertionError(f"{package} {new} is not at the head of the {lowest} queue")
        return took, len(versions)

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
            return _measure(bench, sizes)
        finally:
            bench.close()
            server.drop_database(SCRATCH)
    finally:
        server.stop()


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
