"""A synthetic PyPI in PostgreSQL, made fast and kept between runs.

``filled_database`` makes (once) a database shaped like PyPI followed by a farm for years:
packages, versions with a long-tailed count per package, Requires-Python skips, builds on the
lowest ABIs first with their logs and files (a share of them ``none`` wheels), and the build
queue the schema's own ``requeue_all()`` computes from all that. Everything is generated inside
PostgreSQL (``generate_series`` and a seeded hash, no rows cross the wire) into tables whose
indexes and foreign keys are dropped for the load and recreated from the catalogue's own
definitions afterwards, so the result has exactly the schema's indexes and constraints, checked.

The filled database is a template, named after its sizes and a digest of the migrations, in a
cluster of its own under ``/tmp/piwheels-bench-pg`` (``$PIWHEELS_BENCH_PG``): a later run with the
same sizes and schema reuses it, and a benchmark works on a file-level copy
(:func:`scratch_copy`), so the template never changes.

Run: ``python bench/fill_db.py [--packages N] [--versions N] [--builds N] [--refill]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from piwheels.abis import excluded_by_requires_python, sorted_abis
from piwheels.db.database import Database
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import current_version, migrate, migrations

BENCH_PG = Path(os.environ.get("PIWHEELS_BENCH_PG", "/tmp/piwheels-bench-pg"))
MASTER_ROLE = "piwheels"
# Bumped whenever the generator below changes what it makes, so old templates are not reused.
FILL_FORMAT = 5

# A version's files as the synthetic PyPI lists them (bench_gazer serves these): the URL of its
# sdist, the sdist's SHA256, and the reason given for a yanked release.
SDIST_HOST = "https://files.example/"
SDIST_SHA256 = "0" * 64
YANKED_REASON = "synthetic"
SDIST_URL_SQL = (
    f"'{SDIST_HOST}' || replace(package, '-', '_') || '-' || release || pre || '.tar.gz'"
)


def sdist_url(package: str, version: str) -> str:
    """The URL of *version*'s sdist on the synthetic PyPI (as SDIST_URL_SQL makes it)."""
    return f"{SDIST_HOST}{package.replace('-', '_')}-{version}.tar.gz"


# The tables the fill writes (in load order); their indexes and foreign keys go for the load.
FILLED_TABLES = (
    "packages",
    "versions",
    "version_abi_skips",
    "builds",
    "output",
    "files",
    "dependencies",
    "build_queue",
)

# Requires-Python values and their share of versions (the rest have none). Enough variety that
# every ABI but the newest is skipped by something.
REQUIRES_PYTHON = ((">=3.6", 0.20), (">=3.8", 0.15), (">=3.10", 0.10), (">=3.12", 0.05))

# Pre-release suffixes and their share of versions (the rest are final releases).
PRE_RELEASES = (("a1", 0.03), ("b1", 0.02), ("rc1", 0.03))

# Of the versions with builds that are not none wheels: a single cpXY-abi3 wheel now and then,
# and otherwise ABI-specific builds, a share of which fail.
ABI3_SHARE = 0.03
FAILURE_SHARE = 0.15

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sizes:
    """What to make. The defaults are PyPI's scale (it holds ~930,000 projects)."""

    packages: int = 1_000_000
    versions: int = 8_000_000
    builds: int = 5_000_000
    none_fraction: float = 0.4  # of builds: py3-none-any wheels, which serve every ABI
    abis: tuple[str, ...] = ("cp39", "cp310", "cp311", "cp313")
    seed: int = 1

    @classmethod
    def of(cls, sizes: Mapping[str, int | float]) -> Sizes:
        """The database a benchmark module's sizes ask for (its packages, versions, ...)."""
        return cls(
            int(sizes["packages"]),
            int(sizes["versions"]),
            int(sizes["builds"]),
            float(sizes["none_fraction"]),
        )

    def __post_init__(self) -> None:
        if self.packages < 1 or self.versions < self.packages:
            raise ValueError(
                f"need at least one package and a version per package: {self.packages} "
                f"packages, {self.versions} versions"
            )
        if self.builds < 0 or not 0.0 <= self.none_fraction <= 1.0:
            raise ValueError(f"bad build sizes: {self.builds}, {self.none_fraction}")

    @property
    def key(self) -> str:
        """Names the template: these sizes and the generator that made them."""
        digest = hashlib.sha256(json.dumps([asdict(self), FILL_FORMAT]).encode())
        return f"pypi_{digest.hexdigest()[:12]}"


def _migration_digests() -> dict[str, str]:
    return {m.name: hashlib.sha256(m.sql.encode()).hexdigest()[:16] for m in migrations()}


# Output directories as a farm in its steady state has them, one per set of projects with files
OUTPUT_CACHE = Path(os.environ.get("PIWHEELS_BENCH_OUTPUT", "/tmp/piwheels-bench-output"))


def steady_output(dsn: str, log: Log = _stderr) -> Path:
    """An output directory for a master on *dsn*: an index for each project with files,
    written after them, as a farm that has kept up has it.

    Without it the master's check at start (the Secretary's) finds every index missing and
    writes them all again, as it would after a lost disk: a million pages, not what a benchmark
    of a farm at work means to measure. Made once for each set of such projects (a minute for
    PyPI's), then reused; the pages and logs a run writes are cleared at the next.
    """
    with psycopg.connect(dsn) as conn:
        published = [
            str(package)
            for (package,) in conn.execute(
                "SELECT package FROM packages WHERE last_file_at IS NOT NULL ORDER BY package"
            )
        ]
    digest = hashlib.sha256("\n".join(published).encode()).hexdigest()[:16]
    root = OUTPUT_CACHE / digest
    www = root / "www"
    complete = root / "complete"
    if not complete.exists():
        started = time.perf_counter()
        shutil.rmtree(root, ignore_errors=True)
        simple = www / "simple"
        for package in published:
            (simple / package).mkdir(parents=True)
            (simple / package / "index.json").touch()
        complete.touch()
        log(f"wrote {len(published):,} indexes in {root} in {time.perf_counter() - started:.0f}s")
    for entry in www.iterdir():
        if entry.is_dir() and entry.name != "simple":
            shutil.rmtree(entry)
        elif not entry.is_dir():
            entry.unlink()
    return www


# -- the server ---------------------------------------------------------------------------------


def bench_server(data_dir: Path = BENCH_PG, *, durable: bool = False) -> EmbeddedPostgres:
    """The benchmarks' PostgreSQL, started, with fsync on or off as asked.

    A server left running by an earlier run is adopted, and restarted if its fsync setting is
    not the one wanted: the fill wants speed, the timings want a production server's commits.
    """
    server = EmbeddedPostgres(data_dir, durable=durable)
    fresh = not (data_dir / "PG_VERSION").exists()
    server.start()
    if fresh:
        # A synthetic PyPI writes ~10 GB of WAL in one go; the default 1 GB max_wal_size would
        # checkpoint every few seconds through the load. Persisted in the bench's own cluster.
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
            conn.execute("ALTER SYSTEM SET checkpoint_timeout = '30min'")
            conn.execute("SELECT pg_reload_conf()")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        row = conn.execute("SHOW fsync").fetchone()
    if row is not None and (row[0] == "on") != durable:
        server.restart()
    return server


def master_dsn(superuser_dsn: str) -> str:
    """The same database as the master's unprivileged role sees it."""
    return make_conninfo(superuser_dsn, user=MASTER_ROLE)


def scratch_copy(server: EmbeddedPostgres, template: str, name: str) -> str:
    """A throw-away copy of *template* named *name* (replacing any); returns its superuser DSN.

    FILE_COPY copies the template's files as they are, which for gigabytes is several times
    quicker than the default WAL_LOG strategy's block-by-block copy.
    """
    server.drop_database(name)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return server.dsn(name)


def filled_database(
    server: EmbeddedPostgres, sizes: Sizes, *, refill: bool = False, log: Log = _stderr
) -> str:
    """The name of a database holding a synthetic PyPI of *sizes*; made if not already there.

    It is filled under a temporary name and renamed only once complete, so a fill interrupted
    half-way is never taken for a finished one. A template made before a new migration is
    upgraded in place by ``migrate``, as a production database would be; one made with a
    migration that has since changed is made again.
    """
    name = sizes.key
    made_with = None if refill else _made_with(server, name)
    if made_with:
        current = _migration_digests()
        if all(current.get(migration) == digest for migration, digest in made_with.items()):
            if len(made_with) < len(current):
                started = time.perf_counter()
                migrate(server.dsn(name), master_role=MASTER_ROLE)
                _describe(server, name, sizes)
                log(f"upgraded {name} to the latest schema in {time.perf_counter() - started:.1f}s")
            _settle_withholding(server.dsn(name), log)
            log(f"reusing {name} in {server.data_dir}")
            return name
        log(f"{name} was made with migrations that have changed since: making it again")
    server.drop_database(name)
    partial = f"filling_{name}"
    server.drop_database(partial)
    dsn = server.create_database(partial)
    started = time.perf_counter()
    log(f"filling {name} in {server.data_dir}: {sizes}")
    migrate(dsn, master_role=MASTER_ROLE)
    database = Database(master_dsn(dsn))
    try:
        database.set_build_abis(sorted_abis(sizes.abis))
    finally:
        database.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        _fill(conn, sizes, log)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(partial), sql.Identifier(name)
            )
        )
    _settle_withholding(server.dsn(name), log)
    _describe(server, name, sizes)
    log(f"filled {name} in {time.perf_counter() - started:.0f}s")
    return name


def _settle_withholding(dsn: str, log: Log) -> None:
    """The files of what the synthetic PyPI removed, out of the served tree as a farm following
    PyPI would have had them since (migration 0018): the template is a farm in its steady state.
    Without this, a benchmark's master would spend its first minutes moving some 90,000 of them
    (files that are not on its disk), and the benchmark would time that work with its own."""
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT withhold_for_pypi('0')")
        # as the File Juggler's moves are recorded (files_placed), without the pages they ask
        # for: the pages of a farm in its steady state are written
        moved = conn.execute(
            "UPDATE files SET moved_out = NOT moved_out WHERE ((withheld_for && "
            "ARRAY['removed', 'quarantined']::varchar(20)[]) <> moved_out) IS TRUE"
        ).rowcount
    if moved:
        log(f"withheld {moved:,} files of removed releases in {time.perf_counter() - started:.0f}s")


def _describe(server: EmbeddedPostgres, name: str, sizes: Sizes) -> None:
    """Note on the template what it holds and which migrations made its schema."""
    with psycopg.connect(server.dsn(name), autocommit=True) as conn:
        applied = current_version(conn)
    note = {
        "sizes": asdict(sizes),
        "migrations": dict(list(_migration_digests().items())[:applied]),
    }
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(note))
            )
        )


def _made_with(server: EmbeddedPostgres, name: str) -> dict[str, str] | None:
    """The migrations a finished template was made with, or None if there is none."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if row is None:
        return None
    try:
        return dict(json.loads(row[0])["migrations"])
    except (TypeError, ValueError, KeyError):
        return {}  # no usable note: matches nothing, so it is made again


# -- the fill -----------------------------------------------------------------------------------


@contextmanager
def _phase(what: str, log: Log) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"  {what}: {time.perf_counter() - started:.1f}s")


def _fill(conn: psycopg.Connection[Any], sizes: Sizes, log: Log) -> None:
    # Big sorts and index builds in memory: the machine has plenty, the load is one-off.
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute("SET work_mem = '1GB'")
    conn.execute("SET synchronous_commit = off")
    _helpers(conn, sizes)
    with _phase("dropped indexes and foreign keys", log):
        restore = _drop_indexes(conn)
        row_triggers = _disable_row_triggers(conn)
    with _phase(f"{sizes.packages:,} packages", log):
        _packages(conn, sizes)
    with _phase(f"{sizes.versions:,} versions", log):
        _versions(conn, sizes)
    with _phase("Requires-Python skips", log):
        _skips(conn, sizes)
    with _phase(f"{sizes.builds:,} builds, their logs and files", log):
        _builds(conn, sizes)
    for table, trigger in row_triggers:
        conn.execute(
            sql.SQL("ALTER TABLE {} ENABLE TRIGGER {}").format(
                sql.Identifier(table), sql.Identifier(trigger)
            )
        )
    with _phase("recreated indexes and foreign keys (checked)", log):
        for table, statement in restore:
            if table != "build_queue":
                conn.execute(statement)
        for table, column in (("versions", "version_id"), ("builds", "build_id")):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" (SELECT coalesce(max({column}), 0) + 1 FROM {table}), false)"
            )
    with _phase("requeue_all()", log):
        # Planned on statistics of the filled tables, as in a live database, not of empty ones.
        conn.execute("ANALYZE")
        # Into the bare queue table, its keys added after: 5 million foreign-key checks one
        # row at a time cost minutes; checking them all at once, seconds.
        conn.execute("SELECT requeue_all()")
        for table, statement in restore:
            if table == "build_queue":
                conn.execute(statement)
    with _phase("VACUUM (FREEZE, ANALYZE), CHECKPOINT", log):
        # As autovacuum would have left a years-old database: hint bits set, visibility map
        # full, statistics current; otherwise the first benchmark pays for all that.
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM packages), (SELECT count(*) FROM versions),"
        " (SELECT count(*) FROM builds), (SELECT count(*) FROM files),"
        " (SELECT count(*) FROM build_queue), pg_size_pretty(pg_database_size(current_database()))"
    ).fetchone()
    assert counts is not None
    log("  {:,} packages, {:,} versions, {:,} builds, {:,} files, {:,} queued; {}".format(*counts))


def _helpers(conn: psycopg.Connection[Any], sizes: Sizes) -> None:
    """Session-local SQL functions the generator is written in (gone when the session ends)."""
    # A uniform number in [0, 1) from a row number: a seeded hash rather than random(), so the
    # same sizes always make the same database, whatever order the rows are produced in.
    conn.execute(
        "CREATE FUNCTION pg_temp.u(n bigint, salt integer) RETURNS float8"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$"
        f" SELECT (hashint8extended(n, salt + {int(sizes.seed)} * 1000) & 2147483647)::float8"
        " / 2147483648.0 $$"
    )
    conn.execute(
        "CREATE FUNCTION pg_temp.package_name(n bigint) RETURNS text"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$"
        " SELECT (ARRAY['py', 'django', 'flask', 'lib', 'tool', 'data', 'net', 'zope', 'oslo',"
        " 'sphinx', 'pytest', 'aws'])[1 + n % 12] || '-' || n $$"
    )


def _drop_indexes(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Drop the filled tables' keys, indexes and foreign keys; return what recreates them,
    as (table, statement) in an order that works.

    Loading into bare tables and indexing once is several times quicker than maintaining every
    index row by row. The statements come from the catalogue, so whatever a later migration
    adds is dropped and recreated too.
    """
    tables = list(FILLED_TABLES)
    foreign = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype = 'f' AND (conrelid::regclass::text = ANY(%s)"
        " OR confrelid::regclass::text = ANY(%s)) ORDER BY conname",
        (tables, tables),
    ).fetchall()
    keys = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE contype IN ('p', 'u') AND conrelid::regclass::text = ANY(%s) ORDER BY conname",
        (tables,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),"
        " i.indrelid::regclass::text FROM pg_index i"
        " WHERE i.indrelid::regclass::text = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        (tables,),
    ).fetchall()
    for table, name, _ in foreign + keys:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    for name, _, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
    restore = [
        (
            t,
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ")
            .format(sql.Identifier(t), sql.Identifier(n))
            .as_string(conn)
            + definition,
        )
        for t, n, definition in keys
    ]
    restore += [(table, definition) for _, definition, table in indexes]
    restore += [
        (
            t,
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ")
            .format(sql.Identifier(t), sql.Identifier(n))
            .as_string(conn)
            + definition,
        )
        for t, n, definition in foreign
    ]
    return restore


def _disable_row_triggers(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Turn off the filled tables' row triggers for the load; return them, to turn on again.

    One is a recorded build's request for its project's pages (migration 0009): a database
    followed for years has had its pages written, and 5 million requests, each looking up its
    version in a table without its indexes, took hours. Statement triggers (the kept figures)
    stay on: they see each load as one statement.
    """
    triggers = conn.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
        " WHERE NOT tgisinternal AND tgtype & 1 = 1 AND tgrelid::regclass::text = ANY(%s)"
        " ORDER BY 1, 2",
        (list(FILLED_TABLES),),
    ).fetchall()
    for table, trigger in triggers:
        conn.execute(
            sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                sql.Identifier(table), sql.Identifier(trigger)
            )
        )
    return [(table, trigger) for table, trigger in triggers]


def _packages(conn: psycopg.Connection[Any], sizes: Sizes) -> None:
    conn.execute(
        "INSERT INTO packages (package, display_name, serial, summary, skip, removed)"
        " SELECT pg_temp.package_name(n), initcap(pg_temp.package_name(n)), n,"
        " 'A synthetic project, number ' || n,"
        " CASE WHEN pg_temp.u(n, 1) < 0.002 THEN 'skipped by an operator' ELSE '' END,"
        " pg_temp.u(n, 2) < 0.01"
        " FROM generate_series(1, %s::bigint) AS n",
        (sizes.packages,),
    )


def _versions(conn: psycopg.Connection[Any], sizes: Sizes) -> None:
    """Every package gets one version; the rest go to packages with a long tail.

    Package number floor(N u^2) + 1 for uniform u has density ~ 1/sqrt(rank): at PyPI's scale
    the biggest package gets ~7,000 versions, package 100 ~350, package 10,000 ~35 and most
    just a few (PyPI's own median is about three). Versions are numbered in release order, as
    a database filled over the years would have them, and every V/N-th is a package's first,
    so packages appear steadily over the years too. A share are pre-releases (1.2.3rc1).

    Each version's place in its project's order, pre-release flag and rank (migration 0010)
    are what the master would have recorded: a version's number is its place in release order
    and in PEP 440 order alike, so the places are counted among the versions PyPI lists (not
    removed), as Cloud Gazer counts them with packaging, and the ranks among the buildable ones,
    final releases first, as rank_versions() does. What Cloud Gazer records of a version's
    files is there too, as the synthetic PyPI of bench_gazer serves them (:func:`sdist_url`):
    the sdist's URL and SHA256, and why a yanked release was yanked.
    """
    bounds = []
    total = 0.0
    for spec, share in REQUIRES_PYTHON:
        total += share
        bounds.append(f"WHEN pg_temp.u(i, 12) < {total} THEN '{spec}'")
    requires_python = f"CASE {' '.join(bounds)} END"
    suffixes = []
    total = 0.0
    for suffix, share in PRE_RELEASES:
        total += share
        suffixes.append(f"WHEN pg_temp.u(i, 17) < {total} THEN '{suffix}'")
    pre_release = f"CASE {' '.join(suffixes)} ELSE '' END"
    conn.execute(
        "CREATE TEMP TABLE gen_versions AS"
        " SELECT i, pg_temp.package_name(CASE"
        "   WHEN i %% %(every)s = 0 AND i / %(every)s <= %(packages)s THEN i / %(every)s"
        "   ELSE least(%(packages)s, 1 + floor(%(packages)s * pg_temp.u(i, 10) ^ 2)::bigint)"
        "   END) AS package,"
        " (i / 1000000) || '.' || (i / 1000 %% 1000) || '.' || (i %% 1000) AS release,"
        f" {pre_release} AS pre,"
        " timestamptz '2005-01-01 00:00Z' + (i::float8 / %(versions)s) * interval '7900 days'"
        "   AS released,"
        f" {requires_python} AS requires_python, pg_temp.u(i, 13) < 0.93 AS has_sdist,"
        " pg_temp.u(i, 14) < 0.01 AS yanked, pg_temp.u(i, 15) < 0.01 AS removed,"
        " CASE WHEN pg_temp.u(i, 16) < 0.002 THEN 'not a valid PEP 440 version' ELSE '' END"
        "   AS skip"
        " FROM generate_series(1, %(versions)s::bigint) AS i",
        {
            "packages": sizes.packages,
            "versions": sizes.versions,
            "every": sizes.versions // sizes.packages,
        },
    )
    conn.execute(
        "INSERT INTO versions (version_id, package, version, released, requires_python,"
        " has_sdist, yanked, removed, skip, version_order, prerelease, rank, sdist_url,"
        " sdist_sha256, yanked_reason)"
        " OVERRIDING SYSTEM VALUE"
        " SELECT i, package, release || pre, released, requires_python, has_sdist, yanked,"
        " removed, skip,"
        " CASE WHEN NOT removed THEN"
        "   row_number() OVER (PARTITION BY package, removed ORDER BY i) - 1 END,"
        " pre <> '',"
        " CASE WHEN buildable THEN row_number() OVER ("
        "   PARTITION BY package, buildable ORDER BY pre <> '', i DESC) END,"
        f" CASE WHEN has_sdist THEN {SDIST_URL_SQL} ELSE '' END,"
        f" CASE WHEN has_sdist THEN '{SDIST_SHA256}' ELSE '' END,"
        f" CASE WHEN yanked THEN '{YANKED_REASON}' END"
        " FROM (SELECT *, has_sdist AND NOT yanked AND NOT removed AND skip = '' AS buildable"
        "   FROM gen_versions) AS g"
        " ORDER BY i"
    )
    conn.execute("DROP TABLE gen_versions")


def _allowed_abis(sizes: Sizes) -> dict[str, list[str]]:
    """For each Requires-Python ('' for none), the ABIs it leaves, lowest first."""
    abis = sorted_abis(sizes.abis)
    return {
        spec: [
            abi.abi_tag
            for abi in abis
            if not excluded_by_requires_python(spec or None, abi.python_version)
        ]
        for spec in ["", *(spec for spec, _ in REQUIRES_PYTHON)]
    }


def _skips(conn: psycopg.Connection[Any], sizes: Sizes) -> None:
    # The reasons come from the same function the master uses (abis.excluded_by_requires_python),
    # so they are the rows set_build_abis would have written.
    abis = sorted_abis(sizes.abis)
    skips = [
        {"requires_python": spec, "abi_tag": abi.abi_tag, "reason": reason}
        for spec, _ in REQUIRES_PYTHON
        for abi in abis
        if (reason := excluded_by_requires_python(spec, abi.python_version))
    ]
    conn.execute(
        "INSERT INTO version_abi_skips (version_id, abi_tag, reason)"
        " SELECT v.version_id, x.abi_tag, x.reason"
        " FROM jsonb_to_recordset(%s) AS x(requires_python text, abi_tag text, reason text)"
        " JOIN versions v ON v.requires_python = x.requires_python",
        (Jsonb(skips),),
    )


def _builds(conn: psycopg.Connection[Any], sizes: Sizes) -> None:
    """Builds that follow the queue's rules, so the queue computed from them is a real one.

    Versions with an sdist are picked at random (the newest few left unbuilt, as in a farm that
    keeps up). A share get one build on their lowest allowed ABI making a py3-none-any wheel
    (which serves every ABI); the rest get builds on their first k allowed ABIs (k random):
    ABI-specific wheels, or now and then a failure (which also moves a version on), or a single
    cpXY-abi3 wheel serving XY and up.
    """
    allowed = [{"spec": spec, "abis": abis} for spec, abis in _allowed_abis(sizes).items()]
    conn.execute(
        "CREATE TEMP TABLE allowed AS SELECT x.spec, x.abis"
        " FROM jsonb_to_recordset(%s) AS x(spec text, abis text[])",
        (Jsonb(allowed),),
    )
    # Versions are picked by a seeded hash below a threshold rather than by sorting 8 million
    # of them: the thresholds come from how many versions can be built and how many builds each
    # kind makes on average (a little over, so that LIMIT cuts at exactly the number asked for).
    row = conn.execute(
        "SELECT count(*), avg((1 + cardinality(a.abis)) / 2.0) FROM versions v"
        " JOIN allowed a ON a.spec = coalesce(v.requires_python, '')"
        " WHERE v.has_sdist AND cardinality(a.abis) > 0"
    ).fetchone()
    assert row is not None
    buildable, mean_abis = int(row[0]), float(row[1] or 1.0)
    none_builds = round(sizes.builds * sizes.none_fraction)
    none_share = min(1.0, none_builds / max(1, buildable))
    per_version = ABI3_SHARE + (1 - ABI3_SHARE) * mean_abis
    rest_share = (sizes.builds - none_builds) / max(1, buildable) / per_version * 1.02
    # kind: n = none wheel, 3 = abi3 wheel, s = ABI-specific wheels / failures
    conn.execute(
        "CREATE TEMP TABLE gen AS"
        " SELECT row_number() OVER () AS build_id, g.*"
        " FROM (SELECT v.version_id, v.package, v.version, v.released, v.requires_python,"
        "   k.kind, j, a.abis[j] AS abi,"
        "   k.kind <> 's' OR pg_temp.u(v.version_id * 8 + j, 23) >= %(failure)s AS ok"
        "   FROM versions v JOIN allowed a ON a.spec = coalesce(v.requires_python, '')"
        "   CROSS JOIN LATERAL (SELECT pg_temp.u(v.version_id, 20) AS r) AS r"
        "   CROSS JOIN LATERAL (SELECT CASE WHEN r.r < %(none)s THEN 'n'"
        "     WHEN pg_temp.u(v.version_id, 21) < %(abi3)s THEN '3' ELSE 's' END AS kind) AS k"
        "   CROSS JOIN LATERAL generate_series(1, CASE WHEN k.kind = 's'"
        "     THEN 1 + floor(pg_temp.u(v.version_id, 22) * cardinality(a.abis))::int ELSE 1 END)"
        "     AS j"
        "   WHERE v.has_sdist AND cardinality(a.abis) > 0 AND r.r < %(none)s + %(rest)s"
        "   LIMIT %(builds)s) AS g",
        {
            "none": none_share,
            "rest": rest_share,
            "abi3": ABI3_SHARE,
            "failure": FAILURE_SHARE,
            "builds": sizes.builds,
        },
    )
    conn.execute(
        "INSERT INTO builds (build_id, version_id, abi_tag, built_by, built_at, duration, status,"
        " covers_from, cause, outcome) OVERRIDING SYSTEM VALUE"
        " SELECT g.build_id, g.version_id, g.abi, 1 + g.build_id % 40,"
        " g.released + interval '1 hour' + pg_temp.u(g.build_id, 24) * interval '30 days',"
        " pg_temp.u(g.build_id, 25) * interval '20 minutes', g.ok,"
        " CASE WHEN NOT g.ok THEN NULL WHEN g.kind = 'n' THEN 300"
        "   WHEN g.kind = '3' THEN a.python_order END,"
        # failures spread over the causes real farms see most (migration 0012)
        " CASE WHEN NOT g.ok THEN (ARRAY['missing-header', 'missing-library', 'unknown',"
        "   'build-requirement', 'python-version'])[1 + g.build_id % 5] END,"
        " CASE WHEN g.ok THEN 'built' ELSE 'failed' END"
        " FROM gen g JOIN build_abis a ON a.abi_tag = g.abi"
    )
    conn.execute(
        "INSERT INTO output (build_id, output)"
        " SELECT build_id, 'Processing ' || package || '-' || version || '.tar.gz' || chr(10) ||"
        " CASE WHEN ok THEN 'Successfully built ' || package ELSE 'error: build failed' END"
        " FROM gen"
    )
    conn.execute(
        "INSERT INTO files (filename, build_id, filesize, filehash, package_tag,"
        " package_version_tag, py_version_tag, abi_tag, platform_tag, requires_python)"
        " SELECT t.dist || '-' || g.version || '-' || t.py || '-' || t.abi || '-' || t.plat"
        " || '.whl', g.build_id, 2000 + floor(pg_temp.u(g.build_id, 26) * 5e6)::bigint,"
        " md5(g.build_id::text) || md5(g.version_id::text), t.dist, g.version, t.py, t.abi,"
        " t.plat, g.requires_python"
        " FROM gen g CROSS JOIN LATERAL (SELECT replace(g.package, '-', '_') AS dist,"
        "   CASE g.kind WHEN 'n' THEN 'py3' ELSE g.abi END AS py,"
        "   CASE g.kind WHEN 'n' THEN 'none' WHEN '3' THEN 'abi3' ELSE g.abi END AS abi,"
        "   CASE g.kind WHEN 'n' THEN 'any' ELSE 'linux_armv7l' END AS plat) AS t"
        " WHERE g.ok"
    )
    # A shared library now and then, as a wheel with C code links to (the apt dependencies).
    conn.execute(
        "INSERT INTO dependencies (filename, tool, dependency)"
        " SELECT filename, 'apt', 'libc6' FROM files"
        " WHERE platform_tag <> 'any' AND pg_temp.u(build_id, 27) < 0.3"
    )
    for table in ("gen", "allowed"):
        conn.execute(f"DROP TABLE {table}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Sizes()
    parser.add_argument("--packages", type=int, default=defaults.packages)
    parser.add_argument("--versions", type=int, default=defaults.versions)
    parser.add_argument("--builds", type=int, default=defaults.builds)
    parser.add_argument("--none-fraction", type=float, default=defaults.none_fraction)
    parser.add_argument("--refill", action="store_true", help="make it again even if cached")
    parser.add_argument("--data-dir", type=Path, default=BENCH_PG, help="the bench cluster")
    parser.add_argument(
        "--keep-running", action="store_true", help="leave the server running afterwards"
    )
    args = parser.parse_args(argv)
    sizes = Sizes(args.packages, args.versions, args.builds, args.none_fraction)
    server = bench_server(args.data_dir)
    try:
        name = filled_database(server, sizes, refill=args.refill)
        print(f"{name} in {server.data_dir}: {server.dsn(name)}")
    finally:
        if not args.keep_running:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
