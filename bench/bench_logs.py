"""Download statistics at a busy site's scale: a year of them in PostgreSQL, and a log read in.

The year (``synthetic_logs.year_database``): a synthetic PyPI made by ``fill_db.py`` (100,000
packages by default, with their versions, builds and files), and a busy site's year of
downloads on it, 30,000,000 by default, by a few thousand distinct installers, the projects
drawn with a heavy-tailed popularity (Zipf, s = 1: the most downloaded takes ~6% of them, the
median downloaded project ~50 a year), with the per-day counts, totals and popularity the
schema keeps beside them. It is made once and kept as a template (a few minutes at the default
sizes); each run works on a file-level copy.

Measured, on the copy, through the master's own role:

* the cost of the downloads on a project page: ``hits.project_downloads`` against the whole of
  ``web_queries.project_data`` (which includes it), for the most downloaded project and for the
  median downloaded one. Target: it adds under 1 ms, or under 10% of project_data;
* the home page's figures, ``hits.farm_downloads``, against a ``SELECT 1`` round trip. Target:
  under 50 ms;
* ``refresh_downloads()`` (the Hit Counter's hourly recount of the last 30 days) on the year,
  against the least it must read: a bare sum of every project's last 30 days. No target;
* ``Database.record_hits`` of batches of 1,000 downloads (made by piw-logger's own ``Batch`` from
  the synthetic log's lines, each batch as a new log) on the filled year, against the same
  batches on an empty schema (freshly migrated: no project, no download). Target: within 2x.
  The same batches on the synthetic PyPI before its year (its projects, none downloaded yet)
  are reported too: there every batch moves its projects' popularity off zero, and with it
  their versions in the build queue;
* ingest: a synthetic access log (``synthetic_logs.write_log``, 500,000 lines by default,
  nginx's combined format, a real piwheels log's mix) read by ``piw-logger`` (a process of its
  own) into a real master (:class:`piwheels.master.PiwMaster`, every task but Cloud Gazer, in a
  process of its own, as in bench_slaves.py) on the filled year: lines per second from the
  logger's start to its exit, every batch recorded (and meanwhile the master does what it does
  for them: the downloaded projects' pages are rewritten). The CPU time per line of the logger,
  the master and PostgreSQL is noted, to say where the time goes. Reference: a bare
  ``parse_line`` of the same lines (decoded as the logger decodes them), in this process; and
  parse + ``classify`` alone as a row of its own. Target: >= 5,000 lines/s. A busy site writes
  ~100 million lines a year (~270,000 a day, peaks of ten times that): at 5,000 lines/s a day's
  log is read in under a minute, and a year's backlog in under six hours.

By default the server runs with fsync and synchronous commit on, as a production database would
(``durable=0`` turns them off); the fill itself always runs with them off.

Run: ``python bench/bench_logs.py [--quick] [--downloads N] [--log-lines N] ...``.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fill_db
import psycopg
import synthetic_logs
from bench_slaves import master_config, wait_until_idle
from harness import Row, Sizes, standalone

from piwheels.access_logs.hits import classify
from piwheels.access_logs.lines import BadLine, parse_line
from piwheels.cli.log_output import LazyFileHandler
from piwheels.cli.logger import Batch
from piwheels.cli.options import LOG_FORMAT
from piwheels.db import hits, web_queries
from piwheels.db.database import Database
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import migrate
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig
from piwheels.records.hits import HitBatch

SIZES: dict[str, int | float] = {
    # the synthetic PyPI under the year (fill_db), PyPI's proportions at a tenth of its size
    "packages": 100_000,
    "versions": 800_000,
    "builds": 500_000,
    "none_fraction": 0.4,
    "downloads": 30_000_000,  # in the year
    "clients": 3_000,  # distinct installers seen in the year
    "log_lines": 500_000,
    "batches": 20,  # record_hits batches timed on each database
    "repeat": 3,
    "durable": 1,
}
QUICK: dict[str, int | float] = {
    "packages": 300,
    "versions": 2400,
    "builds": 1500,
    "downloads": 20_000,
    "clients": 50,
    "log_lines": 10_000,
    "batches": 2,
    "repeat": 1,
}

BATCH_DOWNLOADS = 1000
SCRATCH = "bench_logs"
BEFORE = "bench_logs_before"  # the synthetic PyPI before its year
EMPTY = "bench_logs_empty"  # an empty schema: record_hits' reference
MISSING_FILES = "files are recorded but missing from"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


# -- the measurements on the year --------------------------------------------------------------


@dataclass
class PageCost:
    package: str
    downloads: int  # all time
    versions: int
    project_data: float  # seconds, median
    project_downloads: float


class YearBench:
    """The database measurements, on a copy of the year (*dsn*), of the synthetic PyPI before
    it (*before_dsn*) and an empty schema (*empty_dsn*), superuser DSNs; every call goes
    through the master's role."""

    def __init__(self, dsn: str, before_dsn: str, empty_dsn: str, sizes: Sizes) -> None:
        self.admin = psycopg.connect(dsn, autocommit=True)
        self.conn = psycopg.connect(fill_db.master_dsn(dsn), autocommit=True)
        self.db = Database(fill_db.master_dsn(dsn))
        self.before = Database(fill_db.master_dsn(before_dsn))
        self.empty = Database(fill_db.master_dsn(empty_dsn))
        self.repeat = int(sizes["repeat"])

    def close(self) -> None:
        self.empty.close()
        self.before.close()
        self.db.close()
        self.conn.close()
        self.admin.close()

    def select_one(self, count: int = 200) -> float:
        return statistics.median(
            _timed(lambda: self.conn.execute("SELECT 1").fetchone()) for _ in range(count)
        )

    def refresh(self) -> tuple[float, float, int]:
        """refresh_downloads(): seconds and projects moved; and the bare recount's seconds."""
        bare = (
            "SELECT count(*), sum(n) FROM (SELECT package, sum(hits) AS n FROM daily_hits"
            " WHERE kind = 'download' AND day > (now() AT TIME ZONE 'UTC')::date - 30"
            " GROUP BY package) AS r"
        )
        reference = _timed(lambda: self.conn.execute(bare).fetchone())
        moved = 0

        def refresh() -> None:
            nonlocal moved
            moved = self.db.refresh_downloads()

        took = _timed(refresh)
        reference = min(reference, _timed(lambda: self.conn.execute(bare).fetchone()))
        return took, reference, moved

    def samples(self) -> list[tuple[str, str]]:
        """(label, package): the most downloaded project, and the median downloaded one."""
        row = self.admin.execute(
            "WITH t AS (SELECT t.package, t.all_time FROM download_totals t"
            "   JOIN packages p USING (package) WHERE NOT p.removed)"
            " SELECT (SELECT package FROM t ORDER BY all_time DESC, package LIMIT 1),"
            " (SELECT package FROM t ORDER BY all_time, package"
            "   OFFSET (SELECT count(*) / 2 FROM t) LIMIT 1)"
        ).fetchone()
        assert row is not None
        return [("the most downloaded project", row[0]), ("the median downloaded project", row[1])]

    def page_cost(self, package: str) -> PageCost:
        conn = self.conn
        counted = conn.execute(
            "SELECT (SELECT all_time FROM download_totals WHERE package = %s),"
            " (SELECT count(*) FROM versions WHERE package = %s)",
            (package, package),
        ).fetchone()
        assert counted is not None
        if web_queries.project_data(conn, package) is None:  # warm, and there
            raise AssertionError(f"{package} has no project data")
        hits.project_downloads(conn, package)
        data, downloads = [], []
        for _ in range(20 * self.repeat):
            data.append(_timed(lambda: web_queries.project_data(conn, package)))
            downloads.append(_timed(lambda: hits.project_downloads(conn, package)))
        return PageCost(
            package,
            int(counted[0] or 0),
            int(counted[1]),
            statistics.median(data),
            statistics.median(downloads),
        )

    def farm(self) -> float:
        hits.farm_downloads(self.conn)
        return statistics.median(
            _timed(lambda: hits.farm_downloads(self.conn)) for _ in range(20 * self.repeat)
        )

    def record(self, batches: list[HitBatch]) -> dict[str, list[float]]:
        """Seconds of record_hits of each batch on the year, the empty schema and the database
        before the year, in turns (each in turn first), each batch as a log of its own."""
        databases = {"year": self.db, "empty": self.empty, "before": self.before}
        times: dict[str, list[float]] = {name: [] for name in databases}
        for n, batch in enumerate(batches):
            identity = hashlib.sha256(f"bench batch {n}".encode()).hexdigest()
            mine = batch._replace(log=identity, start=0)
            order = list(databases)
            for name in order[n % 3 :] + order[: n % 3]:
                started = time.perf_counter()
                ok = databases[name].record_hits(mine)
                times[name].append(time.perf_counter() - started)
                if not ok:
                    raise AssertionError(f"record_hits refused batch {n} on {name}")
        return times


def batches_of(path: Path, count: int) -> list[HitBatch]:
    """*count* batches of BATCH_DOWNLOADS downloads each (and the other hits among their
    lines), made by piw-logger's own Batch from the log at *path*."""
    found: list[HitBatch] = []
    batch = Batch("0" * 64, 0)
    offset = 0
    with path.open("rb") as log:
        for raw in log:
            offset += len(raw)
            batch.add(raw.rstrip(b"\n"))
            if len(batch.downloads) >= BATCH_DOWNLOADS:
                found.append(batch.take(offset))
                if len(found) == count:
                    break
                batch = Batch("0" * 64, 0)
    if len(found) < count:
        raise ValueError(f"{path} holds fewer than {count} batches of {BATCH_DOWNLOADS}")
    return found


# -- the ingest --------------------------------------------------------------------------------


def _master_main(config: MasterConfig, log_path: str) -> None:
    """The master process: PiwMaster in its main thread, so SIGTERM stops it cleanly."""
    logging.basicConfig(
        level=logging.INFO,
        format=LOG_FORMAT,
        handlers=[LazyFileHandler(log_path, encoding="utf-8")],
        force=True,
    )
    sys.exit(PiwMaster(config, follow_pypi=False).run())


def _wait_for_master(log_path: Path, process: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError(f"the master exited (status {process.exitcode}); see {log_path}")
        if log_path.exists() and "master running" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the master did not start within {timeout}s; see {log_path}")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process *pid* (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu(server: EmbeddedPostgres) -> float:
    """CPU time of the PostgreSQL server's processes (the postmaster's children), so far."""
    postmaster = server.pid()
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if postmaster is not None and int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@dataclass
class Ingest:
    lines: int
    seconds: float
    report: str  # what piw-logger said
    logger_cpu: float
    master_cpu: float
    server_cpu: float
    errors: list[str]
    page_writes: int  # project pages the master wrote from the logger's start to its stop
    unwritten: int  # page requests the master had still to write at its stop


def ingest(
    server: EmbeddedPostgres, dsn: str, log_file: Path, work: Path, abis: list[str]
) -> Ingest:
    """piw-logger reads *log_file* into a real master on *dsn* (a superuser DSN)."""
    config = master_config(
        fill_db.master_dsn(dsn), work, abis, log_queue=f"ipc://{work}/sockets/log"
    )
    log_path = work / "master.log"
    ctx = multiprocessing.get_context("spawn")
    process = ctx.Process(target=_master_main, args=(config, str(log_path)), name="bench-master")
    process.start()
    assert process.pid is not None
    pid = process.pid
    try:
        _wait_for_master(log_path, process)
        settled = wait_until_idle(dsn)
        _note(f"master (pid {pid}) at rest after {settled:.0f}s of start-up work")
        before_log = len(log_path.read_text(errors="replace").splitlines())
        master_cpu, server_cpu = _cpu_seconds(pid), _server_cpu(server)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.time()
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from piwheels.cli.logger import main; sys.exit(main())",
                "--log-queue",
                config.log_queue,
                str(log_file),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        master_cpu = _cpu_seconds(pid) - master_cpu
        server_cpu = _server_cpu(server) - server_cpu
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        logger_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        if done.returncode != 0:
            raise RuntimeError(f"piw-logger failed ({done.returncode}): {done.stderr.strip()}")
    finally:
        if process.is_alive():
            os.kill(pid, signal.SIGTERM)
            process.join(60)
        if process.is_alive():
            process.kill()
            process.join()
    log = log_path.read_text(errors="replace").splitlines()[before_log:]
    # the synthetic PyPI's files are in the database only: the Scribe says so for each page
    errors = [
        line
        for line in log
        if (" ERROR " in line or " CRITICAL " in line) and MISSING_FILES not in line
    ]
    pages = Path(config.output_path) / "project"
    written = sum(page.stat().st_mtime >= wall for page in pages.glob("*/index.html"))
    unwritten = sum(
        int(match.group(1))
        for line in log
        if (match := re.search(r"saved (\d+) unwritten page requests", line))
    )
    match = re.search(r"([\d,]+) lines read", done.stdout)
    lines = int(match.group(1).replace(",", "")) if match else 0
    return Ingest(
        lines,
        seconds,
        done.stdout.strip(),
        logger_cpu,
        master_cpu,
        server_cpu,
        errors,
        written,
        unwritten,
    )


def parse_rates(path: Path, repeat: int) -> tuple[float, float, int]:
    """Lines per second of a bare parse_line of *path*'s lines (decoded as piw-logger does), and
    of parse_line + classify (best of *repeat*, alternately); and the number of lines."""
    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()

    def parse() -> None:
        for raw in lines:
            with suppress(BadLine):
                parse_line(raw.decode("utf-8", "surrogateescape"))

    def parse_classify() -> None:
        for raw in lines:
            with suppress(BadLine):
                classify(parse_line(raw.decode("utf-8", "surrogateescape")))

    best_parse = best_classify = float("inf")
    for _ in range(max(1, repeat)):
        best_parse = min(best_parse, _timed(parse))
        best_classify = min(best_classify, _timed(parse_classify))
    return len(lines) / best_parse, len(lines) / best_classify, len(lines)


# -- the benchmark -----------------------------------------------------------------------------


def run(sizes: Sizes, *, data_dir: Path = fill_db.BENCH_PG) -> list[Row]:
    """Fill (or reuse) the year, measure on copies of it, stop the server."""
    year = synthetic_logs.Year.of(sizes)
    server = fill_db.bench_server(data_dir, durable=False)
    try:
        base = fill_db.filled_database(server, year.base, log=_note)
        template, end_day = synthetic_logs.year_database(server, base, year, log=_note)
        server = fill_db.bench_server(data_dir, durable=bool(sizes["durable"]))
        with tempfile.TemporaryDirectory(prefix="bench-logs-") as work_dir:
            work = Path(work_dir)
            log_file = work / "access.log"
            started = time.perf_counter()
            # the day after the year, from its start: the log's days are new to the database
            start = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC)
            size = synthetic_logs.write_log(
                log_file,
                int(sizes["log_lines"]),
                year.base.packages,
                synthetic_logs.agents(year.clients * 4 // 3),
                start + timedelta(days=1),
            )
            _note(
                f"wrote {int(sizes['log_lines']):,} log lines ({size / 1e6:.0f} MB) in"
                f" {time.perf_counter() - started:.1f}s"
            )
            started = time.perf_counter()
            dsn = fill_db.scratch_copy(server, template, SCRATCH)
            before = fill_db.scratch_copy(server, base, BEFORE)
            server.drop_database(EMPTY)
            empty = server.create_database(EMPTY)
            migrate(empty, master_role=fill_db.MASTER_ROLE)
            _note(f"copied {template} and {base} in {time.perf_counter() - started:.1f}s")
            try:
                bench = YearBench(dsn, before, empty, sizes)
                try:
                    rows = _measure(bench, sizes, batches_of(log_file, int(sizes["batches"])))
                finally:
                    bench.close()
                server.drop_database(BEFORE)
                server.drop_database(EMPTY)
                rows += _ingest_rows(server, dsn, log_file, work, year, sizes)
            finally:
                server.drop_database(BEFORE)
                server.drop_database(EMPTY)
                server.drop_database(SCRATCH)
        return rows
    finally:
        server.stop()


def _measure(bench: YearBench, sizes: Sizes, batches: list[HitBatch]) -> list[Row]:
    rows = []
    select_one = bench.select_one()
    took, reference, moved = bench.refresh()
    _note(
        f"refresh_downloads(): {took:.2f}s, {moved} moved in the queue; bare sum {reference:.2f}s"
    )
    rows.append(
        Row(
            "refresh_downloads() on the year (the hourly recount of the last 30 days)",
            took,
            reference,
            "s",
            "bare sum of every project's last 30 days",
        )
    )
    for label, package in bench.samples():
        cost = bench.page_cost(package)
        ms = 1000.0
        _note(
            f"{label}: {package} ({cost.downloads:,} downloads, {cost.versions} versions):"
            f" project_data {cost.project_data * ms:.2f} ms, of which project_downloads"
            f" {cost.project_downloads * ms:.3f} ms"
        )
        rows.append(
            Row(
                f"project page: project_downloads, {label} ({cost.downloads:,} downloads,"
                f" {cost.versions} versions)",
                cost.project_downloads * ms,
                cost.project_data * ms,
                "ms",
                "the whole project_data, which includes it",
                "< 1 ms or < 10% of project_data",
                cost.project_downloads < 0.001 or cost.project_downloads < 0.1 * cost.project_data,
            )
        )
    farm = bench.farm()
    _note(f"farm_downloads: {farm * 1000:.2f} ms; SELECT 1 {select_one * 1000:.3f} ms")
    rows.append(
        Row(
            "home page: farm_downloads (30 days, all time, the top 10)",
            farm * 1000,
            select_one * 1000,
            "ms",
            "SELECT 1 round trip",
            "< 50 ms",
            farm < 0.05,
        )
    )
    times = bench.record(batches)
    year, empty, before = (statistics.median(times[name]) for name in ("year", "empty", "before"))
    downloads = statistics.mean(len(b.downloads) for b in batches)
    others = statistics.mean(len(b.hits) for b in batches)
    _note(
        f"record_hits, {len(batches)} batches of {downloads:.0f} downloads and {others:.0f}"
        " daily rows: median (max) "
        + ", ".join(
            f"{label} {statistics.median(times[name]) * 1000:.1f} ms"
            f" ({max(times[name]) * 1000:.1f})"
            for name, label in (
                ("year", "on the year"),
                ("empty", "on an empty schema"),
                ("before", "on the synthetic PyPI before its year"),
            )
        )
    )
    rows.append(
        Row(
            f"record_hits, a batch of {BATCH_DOWNLOADS:,} downloads, on the filled year (median)",
            year * 1000,
            empty * 1000,
            "ms",
            "the same batches on an empty schema",
            "within 2x",
            year <= 2 * empty,
        )
    )
    rows.append(
        Row(
            "  the same on the synthetic PyPI before its year (popularity moves off zero)",
            before * 1000,
            empty * 1000,
            "ms",
            "the same batches on an empty schema",
        )
    )
    return rows


def _ingest_rows(
    server: EmbeddedPostgres,
    dsn: str,
    log_file: Path,
    work: Path,
    year: synthetic_logs.Year,
    sizes: Sizes,
) -> list[Row]:
    done = ingest(server, dsn, log_file, work, list(year.base.abis))
    _note(f"piw-logger: {done.report}")
    rate = done.lines / done.seconds
    per_line = 1e6 / max(1, done.lines)
    _note(
        f"ingest: {done.lines:,} lines in {done.seconds:.1f}s ({rate:,.0f} lines/s); CPU per line:"
        f" piw-logger {done.logger_cpu * per_line:.1f} us, the master"
        f" {done.master_cpu * per_line:.1f} us, PostgreSQL {done.server_cpu * per_line:.1f} us;"
        f" {done.page_writes:,} project pages written from then to the master's stop"
        f" ({done.unwritten:,} left unwritten)"
    )
    for error in done.errors[:20]:
        _note(f"  master: {error}")
    parse, parse_classify, count = parse_rates(log_file, int(sizes["repeat"]))
    if count != done.lines:
        raise AssertionError(f"piw-logger read {done.lines} lines of {count}")
    _note(f"bare parse_line {parse:,.0f} lines/s, with classify {parse_classify:,.0f} lines/s")
    return [
        Row(
            f"ingest: piw-logger -> a master -> the year, {done.lines:,} lines",
            rate,
            parse,
            "lines/s",
            "bare parse_line of the same lines",
            ">= 5,000 lines/s",
            rate >= 5000,
        ),
        Row(
            "  parse_line + classify alone",
            parse_classify,
            parse,
            "lines/s",
            "bare parse_line of the same lines",
        ),
    ]


if __name__ == "__main__":  # standalone: python bench/bench_logs.py --quick
    standalone(__doc__ or "", SIZES, QUICK, run)
