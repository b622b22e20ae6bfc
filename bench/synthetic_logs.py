"""A busy piwheels site's traffic, made up: its installers, its access log, and a year of its
downloads in the database.

The clients are pip and uv as they describe themselves (the "linehaul" JSON after the product
token), varied in installer version, Python, kernel, distribution and CPU as Raspberry Pis and
other ARM boards vary; :func:`agents` gives a fixed pool of them, most popular first, so that
the year in the database and a log can share their clients.

The log (:func:`write_log`) is nginx's "combined" format, as nginx writes it (a quote inside a
field as ``\\x22``), with a mix like a real piwheels log's: mostly wheels downloaded by pip and
uv, their index look-ups, PEP 658 metadata, project pages and JSON read by browsers and
crawlers, caches revalidating (304), partial downloads, 404s, the site's other paths,
vulnerability scanners, and a few lines that are not log lines at all. Projects are chosen
with a heavy-tailed popularity (Zipf, s = 1) over the synthetic PyPI's names (``fill_db.py``),
so the popular few take most of the traffic; a project's downloads are mostly of its newest
releases. The same seed makes the same log.

The year (:func:`year_database`) goes on a copy of a synthetic PyPI made by ``fill_db.py``: a
busy site's downloads over the 365 days up to yesterday, each of one of its project's newest
files, by one of the pool's installers, projects and installers drawn with the same Zipf as the
log's. With them, what the schema keeps beside them, consistent with them (migration 0017):
each project's downloads per day and, on the same days, its index look-ups ("searches") and now
and then page and JSON reads (``daily_hits``), the farm's days (``farm_daily``), each project's
totals (``download_totals``), its popularity and so its versions' places in the build queue,
and a cursor per day's log. All of it is generated inside PostgreSQL (``generate_series`` and a
seeded hash, no rows cross the wire), the downloads in one session and the same draws counted
per project and day in another at the same time, into tables whose indexes and keys are made
afterwards from the catalogue's own definitions. The result is a template in fill_db's cluster,
named after its sizes, with the migrations it was made with noted on it: a later migration
upgrades it in place, a changed one has it made again, as does a year that ended more than a
week ago (the pages count the last 30 days).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import fill_db
import psycopg
from psycopg import sql

from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import current_version, migrate, migrations

# fill_db's package_name(n): the synthetic PyPI's project number n is called PREFIXES[n % 12]-n
PREFIXES = (
    "py",
    "django",
    "flask",
    "lib",
    "tool",
    "data",
    "net",
    "zope",
    "oslo",
    "sphinx",
    "pytest",
    "aws",
)

PIP_VERSIONS = (
    *("20.3.4", "22.0.2", "23.0.1", "23.2.1", "24.0", "24.2", "24.3.1", "25.0.1"),
    *("25.1.1", "25.2", "25.3", "26.0.1", "26.3"),
)
UV_VERSIONS = ("0.4.18", "0.5.11", "0.6.14", "0.7.3", "0.8.22", "0.9.5", "0.9.18")
PYTHONS = ("3.7.3", "3.9.2", "3.11.2", "3.11.7", "3.12.3", "3.13.1", "3.13.5")
# name, version, codename, glibc
DISTROS = (
    ("Raspbian GNU/Linux", "10", "buster", "2.28"),
    ("Raspbian GNU/Linux", "11", "bullseye", "2.31"),
    ("Raspbian GNU/Linux", "12", "bookworm", "2.36"),
    ("Debian GNU/Linux", "12", "bookworm", "2.36"),
    ("Debian GNU/Linux", "13", "trixie", "2.41"),
    ("Ubuntu", "24.04", "noble", "2.39"),
)
CPUS = ("armv7l", "armv7l", "aarch64", "aarch64", "aarch64", "armv6l")

BROWSERS = (
    "Mozilla/5.0 (X11; Linux aarch64; rv:128.0) Gecko/20100101 Firefox/128.0",
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/18.1 Safari/605.1.15"
    ),
    (
        "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.6478.164 Safari/537.36"
    ),
)
CRAWLERS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
)
TOOLS = ("curl/7.88.1", "python-requests/2.32.3", "Wget/1.21.3", "Go-http-client/1.1")
OTHER_PATHS = (
    "/",
    "/simple/",
    "/packages.json",
    "/faq/",
    "/search/",
    "/robots.txt",
    "/sitemap.xml",
    "/static/styles.css",
    "/static/search.js",
    "/favicon.ico",
)
SCANS = ("/wp-login.php", "/.env", "/.git/config", "/phpmyadmin/", "/admin/", "/cgi-bin/luci")
WHEEL_TAGS = (
    "py3-none-any",
    "py3-none-any",
    "cp311-cp311-linux_armv7l",
    "cp311-cp311-linux_aarch64",
    "cp313-cp313-linux_aarch64",
    "cp39-cp39-linux_armv7l",
    "cp311-abi3-linux_armv6l",
)

# What each line is, and how often (weights; a real piwheels log's proportions, roughly).
MIX = (
    ("download", 40.0),  # GET a wheel, 200, by pip or uv: counted
    ("download_other", 2.5),  # the same answered 304 or 206, or a HEAD: not counted
    ("metadata", 5.0),  # PEP 658 metadata by pip: not counted
    ("search", 30.0),  # GET /simple/<name>/, 200, by pip or uv: counted
    ("search_304", 3.0),  # the same revalidated: not counted
    ("index_crawler", 2.0),  # /simple/<name>/ by a crawler: not counted
    ("project", 7.0),  # /project/<name>/ by a browser or crawler: counted
    ("json", 2.0),  # /project/<name>/json/ by a tool: counted
    ("missing", 3.0),  # /simple/<unknown>/ by pip: 404
    ("scan", 1.0),  # vulnerability scanners: 404
    ("other", 4.0),  # the home page, search, static files, the index root
    ("garbage", 0.5),  # not a log line: cut short, binary, or empty
)


@dataclass(frozen=True)
class Agent:
    """A client as its User-Agent says, and the fields piw-logger keeps of it."""

    header: str
    fields: tuple[str, ...]  # as ClientRow: installer ... cpu ("" for not said)


def package_name(number: int) -> str:
    """The synthetic PyPI's project *number* (as fill_db names it)."""
    return f"{PREFIXES[number % len(PREFIXES)]}-{number}"


def zipf(rng: random.Random, count: int) -> int:
    """A number in 1..*count*, 1 the most likely: P(k) = ln(1 + 1/k) / ln(count + 1), the
    continuous Zipf (s = 1) that bench_logs.py's SQL draws with too."""
    return min(count, int(math.exp(rng.random() * math.log(count + 1.0))))


def agents(count: int, seed: int = 20) -> list[Agent]:
    """*count* distinct installers' agents, most popular (by draw order) first."""
    rng = random.Random(seed)
    seen: set[str] = set()
    found: list[Agent] = []
    while len(found) < count:
        agent = _agent(rng)
        if agent.header not in seen:
            seen.add(agent.header)
            found.append(agent)
    return found


def _agent(rng: random.Random) -> Agent:
    installer = "uv" if rng.random() < 0.25 else "pip"
    version = rng.choice(UV_VERSIONS if installer == "uv" else PIP_VERSIONS)
    python = rng.choice(PYTHONS)
    distro, distro_version, codename, glibc = rng.choice(DISTROS)
    cpu = rng.choice(CPUS)
    v8 = "v8" if cpu == "aarch64" else "v7"
    kernel = f"6.{rng.choice((1, 6, 12))}.{rng.randrange(20, 70)}+rpt-rpi-{v8}"
    document = {
        "ci": None,
        "cpu": cpu,
        "distro": {
            "id": codename,
            "libc": {"lib": "glibc", "version": glibc},
            "name": distro,
            "version": distro_version,
        },
        "implementation": {"name": "CPython", "version": python},
        "installer": {"name": installer, "version": version},
        "openssl_version": "OpenSSL 3.0.15 3 Sep 2024",
        "python": python,
        "rustc_version": None,
        "setuptools_version": "66.1.1",
        "system": {"name": "Linux", "release": kernel},
    }
    header = f"{installer}/{version} {json.dumps(document, separators=(',', ':'))}"
    fields = (installer, version, "CPython", python, python, "Linux", kernel, distro)
    return Agent(header, (*fields, distro_version, cpu))


def _quoted(text: str) -> str:
    # nginx writes `"`, `\` and bytes outside printable ASCII as \xHH
    return text.replace("\\", "\\x5C").replace('"', "\\x22")


class LogWriter:
    """Makes the lines of one log: *projects* synthetic projects, *pool* installers' agents."""

    def __init__(self, projects: int, pool: list[Agent], start: datetime, seed: int) -> None:
        self.rng = random.Random(seed)
        self.projects = projects
        self.pool = [_quoted(agent.header) for agent in pool]
        self.browsers = [_quoted(a) for a in BROWSERS]
        self.crawlers = [_quoted(a) for a in CRAWLERS]
        self.when = start.astimezone(UTC)
        self.stamp = ""
        self.stamp_second = -1.0
        kinds, weights = zip(*MIX, strict=True)
        self.kinds: tuple[str, ...] = kinds
        self.cumulative = [sum(weights[: n + 1]) for n in range(len(weights))]

    def _time(self, gap: float) -> str:
        self.when += timedelta(seconds=self.rng.expovariate(1.0 / gap))
        second = self.when.timestamp() // 1
        if second != self.stamp_second:
            self.stamp_second = second
            self.stamp = self.when.strftime("%d/%b/%Y:%H:%M:%S +0000")
        return self.stamp

    def _host(self) -> str:
        rng = self.rng
        return ".".join(
            str(n)
            for n in (
                rng.randrange(1, 224),
                rng.randrange(256),
                rng.randrange(256),
                rng.randrange(1, 255),
            )
        )

    def _installer(self) -> str:
        return self.pool[zipf(self.rng, len(self.pool)) - 1]

    def _wheel(self, project: str) -> str:
        # most downloads are of a project's newest release or the few before it
        newer = zipf(self.rng, 20) - 1
        version = f"1.{20 - newer}.{newer % 3}"
        return f"{project.replace('-', '_')}-{version}-{self.rng.choice(WHEEL_TAGS)}.whl"

    def line(self, gap: float) -> bytes:
        """One line (with its newline); lines come *gap* seconds apart on average."""
        rng = self.rng
        kind = self.kinds[_bisect(self.cumulative, rng.random() * self.cumulative[-1])]
        when = self._time(gap)
        host = self._host()
        project = package_name(zipf(rng, self.projects))
        method, status, referrer = "GET", 200, "-"
        if kind == "garbage":
            return self._garbage(host, when)
        if kind in ("download", "download_other", "metadata"):
            path = f"/simple/{project}/{self._wheel(project)}"
            agent, size = self._installer(), rng.randrange(5_000, 20_000_000)
            if kind == "metadata":
                path, size = path + ".metadata", rng.randrange(800, 6_000)
            elif kind == "download_other":
                method, status = rng.choice((("GET", 304), ("GET", 206), ("HEAD", 200)))
        elif kind in ("search", "search_304", "missing"):
            agent, size = self._installer(), rng.randrange(300, 30_000)
            status = {"search": 200, "search_304": 304, "missing": 404}[kind]
            if kind == "missing":
                project = f"not-here-{rng.randrange(10**6)}"
            path = f"/simple/{project}/"
        elif kind == "index_crawler":
            path, agent, size = f"/simple/{project}/", rng.choice(self.crawlers), 2_000
        elif kind == "project":
            path, size = f"/project/{project}/", rng.randrange(4_000, 60_000)
            agent = rng.choice(self.browsers if rng.random() < 0.6 else self.crawlers)
            referrer = "https://www.piwheels.org/search/" if rng.random() < 0.3 else "-"
        elif kind == "json":
            path, agent, size = f"/project/{project}/json/", rng.choice(TOOLS), 9_000
        elif kind == "scan":
            path, agent, status, size = rng.choice(SCANS), rng.choice(TOOLS), 404, 555
        else:
            path, size = rng.choice(OTHER_PATHS), rng.randrange(200, 2_000_000)
            agent = rng.choice(self.browsers)
        return (
            f'{host} - - [{when}] "{method} {path} HTTP/1.1" {status} {size} "{referrer}" '
            f'"{agent}"\n'
        ).encode()

    def _garbage(self, host: str, when: str) -> bytes:
        choice = self.rng.randrange(3)
        if choice == 0:  # a line cut short (a crash, a full disk)
            return f'{host} - - [{when}] "GET /simple/numpy/nump\n'.encode()
        if choice == 1:  # TLS spoken to the plain port, as nginx logs it: a 400, not counted
            handshake = "\\x16\\x03\\x01\\x02\\x00\\x01"
            return f'{host} - - [{when}] "{handshake}" 400 157 "-" "-"\n'.encode()
        return b"\x00\x00\x00\x00 \xff\xfe garbage\n"


def _bisect(cumulative: list[float], value: float) -> int:
    for n, bound in enumerate(cumulative):
        if value < bound:
            return n
    return len(cumulative) - 1


def write_log(
    path: Path,
    lines: int,
    projects: int,
    pool: list[Agent],
    start: datetime,
    *,
    gap: float = 0.3,
    seed: int = 21,
) -> int:
    """Write *lines* lines to *path* from *start*, *gap* seconds apart on average (0.3 s: about
    290,000 lines a day, a busy piwheels' rate); returns the bytes written."""
    writer = LogWriter(projects, pool, start, seed)
    written = 0
    with path.open("wb") as out:
        chunk: list[bytes] = []
        for n in range(lines):
            chunk.append(writer.line(gap))
            if len(chunk) == 10_000 or n == lines - 1:
                data = b"".join(chunk)
                out.write(data)
                written += len(data)
                chunk.clear()
    return written


# -- a year of it in the database -------------------------------------------------------------

# Bumped whenever the year's generator changes what it makes, so old templates are not reused.
YEAR_FORMAT = 1
FRESH_DAYS = 7  # a template whose year ended longer ago is made again
YEAR_TABLES = ("clients", "downloads", "daily_hits", "farm_daily", "download_totals", "log_cursors")
FILES_PER_PROJECT = 8  # a download is of one of its project's newest few files

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def _phase(what: str, log: Log) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log(f"  {what}: {time.perf_counter() - started:.1f}s")


@dataclass(frozen=True)
class Year:
    """What to make: a synthetic PyPI (*base*) and a year of *downloads* by *clients*."""

    base: fill_db.Sizes
    downloads: int
    clients: int
    seed: int = 1

    @classmethod
    def of(cls, sizes: Mapping[str, int | float]) -> Year:
        return cls(fill_db.Sizes.of(sizes), int(sizes["downloads"]), int(sizes["clients"]))

    @property
    def key(self) -> str:
        digest = hashlib.sha256(json.dumps([asdict(self), YEAR_FORMAT]).encode())
        return f"logs_{digest.hexdigest()[:12]}"


def _migration_digests() -> dict[str, str]:
    return {m.name: hashlib.sha256(m.sql.encode()).hexdigest()[:16] for m in migrations()}


def _today() -> date:
    return datetime.now(UTC).date()


def _template_note(server: EmbeddedPostgres, name: str) -> dict[str, Any] | None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if row is None:
        return None
    try:
        note = json.loads(row[0])
    except (TypeError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def year_database(
    server: EmbeddedPostgres, base: str, year: Year, *, log: Log = _stderr
) -> tuple[str, date]:
    """The name of a template holding *base* (fill_db's) and *year*, and the year's last day;
    made (from a copy of *base*) unless one is there, made with today's migrations, and its
    year ended at most FRESH_DAYS ago."""
    name = year.key
    note = _template_note(server, name)
    if note is not None:
        ended = date.fromisoformat(str(note.get("end_day", "1970-01-01")))
        made_with = note.get("migrations") or {}
        current = _migration_digests()
        unchanged = all(current.get(m) == digest for m, digest in made_with.items())
        if made_with and unchanged and (_today() - ended).days <= FRESH_DAYS:
            if len(made_with) < len(current):
                # a new migration since: upgraded in place, as a production database would be
                started = time.perf_counter()
                migrate(server.dsn(name), master_role=fill_db.MASTER_ROLE)
                _describe(server, name, year, ended)
                log(f"upgraded {name} to the latest schema in {time.perf_counter() - started:.1f}s")
            log(f"reusing {name} (its year ends {ended}) in {server.data_dir}")
            return name, ended
        log(f"{name} is out of date (its year ended {ended}, or a migration changed): remaking it")
    server.drop_database(name)
    partial = f"filling_{name}"
    fill_db.scratch_copy(server, base, partial)
    end_day = _today() - timedelta(days=1)
    started = time.perf_counter()
    log(f"filling {name} from {base}: {year.downloads:,} downloads up to {end_day}")
    _fill_year(server.dsn(partial), year, end_day, log)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(partial), sql.Identifier(name)
            )
        )
    _describe(server, name, year, end_day)
    log(f"filled {name} in {time.perf_counter() - started:.0f}s")
    return name, end_day


def _describe(server: EmbeddedPostgres, name: str, year: Year, end_day: date) -> None:
    """Note on the template what it holds, its year's last day and its schema's migrations."""
    with psycopg.connect(server.dsn(name), autocommit=True) as conn:
        applied = current_version(conn)
    note = {
        "year": asdict(year),
        "end_day": end_day.isoformat(),
        "migrations": dict(list(_migration_digests().items())[:applied]),
    }
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(note))
            )
        )


def _session(dsn: str, year: Year) -> psycopg.Connection[Any]:
    """A connection for the fill: big sorts in memory, UTC days, the generator's helpers."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET maintenance_work_mem = '2GB'")
    conn.execute("SET work_mem = '2GB'")
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET TimeZone = 'UTC'")
    # As fill_db's: a uniform number in [0, 1) from a row number, the same in every session.
    conn.execute(
        "CREATE FUNCTION pg_temp.u(n bigint, salt integer) RETURNS float8"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$"
        f" SELECT (hashint8extended(n, salt + {int(year.seed)} * 1000) & 2147483647)::float8"
        " / 2147483648.0 $$"
    )
    prefixes = ", ".join(f"'{prefix}'" for prefix in PREFIXES)
    conn.execute(
        "CREATE FUNCTION pg_temp.package_name(n bigint) RETURNS text"
        " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$"
        f" SELECT (ARRAY[{prefixes}])[1 + n % {len(PREFIXES)}] || '-' || n $$"
    )
    return conn


def _draws(year: Year, start: datetime) -> tuple[str, dict[str, Any]]:
    """The year's downloads as SQL (one row each, in time order: i, accessed_at, n the
    project's number, client, k which of its files), and its parameters. Each is drawn from
    its row number alone, so two sessions reading it see the same downloads."""
    query = (
        "SELECT i, %(start)s::timestamptz"
        "   + ((i - 1)::float8 / %(downloads)s) * interval '365 days' AS accessed_at,"
        # the continuous Zipf (s = 1), as synthetic_logs.zipf draws it
        " least(%(packages)s, floor(exp(pg_temp.u(i, 30) * ln(%(packages)s + 1.0)))::bigint)"
        "   AS n,"
        " least(%(clients)s, floor(exp(pg_temp.u(i, 31) * ln(%(clients)s + 1.0)))::int)"
        "   AS client,"
        # the newest files most often
        f" floor(pg_temp.u(i, 32) ^ 2 * {FILES_PER_PROJECT})::int AS k"
        " FROM generate_series(1, %(downloads)s::bigint) AS i"
    )
    return query, {
        "start": start,
        "downloads": year.downloads,
        "packages": year.base.packages,
        "clients": year.clients,
    }


def _fill_year(dsn: str, year: Year, end_day: date, log: Log) -> None:
    start = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC) - timedelta(days=364)
    draws, params = _draws(year, start)
    conn = _session(dsn, year)
    other = _session(dsn, year)
    try:
        with _phase("dropped the year's indexes and keys", log):
            restore = _drop_indexes(conn)
        with _phase(f"{year.clients:,} clients", log):
            pool = agents(year.clients)
            with conn.cursor().copy(
                "COPY clients (installer, installer_version, implementation,"
                " implementation_version, python, os, os_version, distro, distro_version, cpu)"
                " FROM STDIN"
            ) as copy:
                for agent in pool:
                    copy.write_row(agent.fields)
        with _phase("each project's newest files", log):
            _project_files(conn)
        # Two statements at once, one per core: the downloads, and the same draws counted per
        # project and day. Neither INSERT can use a parallel plan.
        with (
            _phase(f"{year.downloads:,} downloads, and their days counted alongside", log),
            ThreadPoolExecutor(2) as pool_of_two,
        ):
            rows = pool_of_two.submit(
                _execute_timed,
                conn,
                "INSERT INTO downloads (accessed_at, filename, client_id)"
                f" SELECT g.accessed_at, f.filename, g.client FROM ({draws}) AS g"
                " JOIN pg_temp.project_files f ON f.n = g.n AND f.k = g.k",
                params,
            )
            days = pool_of_two.submit(
                _execute_timed,
                other,
                "INSERT INTO daily_hits (package, kind, day, hits)"
                " SELECT pg_temp.package_name(n), 'download', day, count(*)"
                " FROM (SELECT n, (accessed_at AT TIME ZONE 'UTC')::date AS day"
                f"   FROM ({draws}) AS d) AS g"
                " GROUP BY n, day",
                params,
            )
            log(f"    downloads {rows.result():.1f}s, their days counted {days.result():.1f}s")
        with _phase("searches, pages and JSON per day; the farm's days; totals", log):
            _other_hits(conn)
        with _phase("popularity, and the build queue reordered by it", log):
            conn.execute(
                "UPDATE packages p SET popularity = popularity_of(t.last_30_days)"
                " FROM download_totals t WHERE t.package = p.package"
                " AND p.popularity <> popularity_of(t.last_30_days)"
            )
            conn.execute(
                "SELECT reorder_queue(ARRAY(SELECT package FROM packages WHERE popularity > 0))"
            )
        with _phase("recreated indexes and keys (checked)", log):
            for statement in restore:
                conn.execute(statement)
        with _phase("VACUUM (FREEZE, ANALYZE), CHECKPOINT", log):
            conn.execute("VACUUM (FREEZE, ANALYZE)")
            conn.execute("CHECKPOINT")
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM downloads), (SELECT count(*) FROM daily_hits),"
            " (SELECT count(*) FROM download_totals), (SELECT count(*) FROM clients),"
            " pg_size_pretty(pg_total_relation_size('downloads')),"
            " pg_size_pretty(pg_total_relation_size('daily_hits')),"
            " pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()
        assert counts is not None
        log(
            "  {:,} downloads, {:,} daily_hits rows, {:,} projects downloaded, {:,} clients;"
            " downloads {}, daily_hits {}, the database {}".format(*counts)
        )
    finally:
        other.close()
        conn.close()


def _execute_timed(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    conn.execute(query, params)
    return time.perf_counter() - started


def _drop_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the year's tables' keys and indexes (from the catalogue, so whatever a later
    migration adds goes too); return the statements that make them again, keys first."""
    tables = list(YEAR_TABLES)
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype"
        " FROM pg_constraint WHERE contype IN ('p', 'u', 'f')"
        " AND (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s))"
        " ORDER BY contype = 'f', conname",
        (tables, tables),
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid::regclass::text = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
        (tables,),
    ).fetchall()
    for table, name, _, _ in reversed(constraints):
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))

    def add(table: str, name: str, definition: str) -> str:
        return (
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ")
            .format(sql.Identifier(table), sql.Identifier(name))
            .as_string(conn)
            + definition
        )

    # keys, then the other indexes, then the foreign keys that need the keys
    restore = [add(t, n, d) for t, n, d, kind in constraints if kind != "f"]
    restore += [definition for _, definition in indexes]
    restore += [add(t, n, d) for t, n, d, kind in constraints if kind == "f"]
    return restore


def _project_files(conn: psycopg.Connection[Any]) -> None:
    """pg_temp.project_files (n, k, filename): for each project number n, FILES_PER_PROJECT
    file names k = 0, 1, ...: its newest files, over again if it has fewer, or a made-up wheel
    if it has none."""
    conn.execute(
        "CREATE TEMP TABLE ranked AS SELECT package, filename, k, least(count, %s) AS count"
        " FROM (SELECT v.package, f.filename,"
        "   row_number() OVER (PARTITION BY v.package ORDER BY f.build_id DESC) AS k,"
        "   count(*) OVER (PARTITION BY v.package) AS count"
        "   FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)) AS r"
        " WHERE k <= %s",
        (FILES_PER_PROJECT, FILES_PER_PROJECT),
    )
    conn.execute(
        "CREATE TEMP TABLE project_files AS"
        " SELECT substring(p.package FROM '[0-9]+$')::bigint AS n, s.k,"
        " coalesce(r.filename, replace(p.package, '-', '_') || '-1.0-py3-none-any.whl')"
        "   AS filename"
        " FROM packages p CROSS JOIN generate_series(0, %s) AS s (k)"
        " LEFT JOIN (SELECT DISTINCT package, count FROM ranked) AS c USING (package)"
        " LEFT JOIN ranked r ON r.package = p.package AND r.k = 1 + s.k %% c.count",
        (FILES_PER_PROJECT - 1,),
    )
    conn.execute("ANALYZE project_files")


def _other_hits(conn: psycopg.Connection[Any]) -> None:
    """The rest of the year, from its downloads per project and day: on each such day,
    searches (index look-ups: one or more per download), and now and then the project's page
    and JSON; then the farm's days, each project's totals, a cursor per day's log."""
    # a uniform number per (project, day) and salt
    draw = "pg_temp.u(hashtext(package)::bigint * 100000 + (day - date '2000-01-01'), {})"
    conn.execute(
        "INSERT INTO daily_hits (package, kind, day, hits)"
        f" SELECT package, 'search', day, hits + floor(hits * 2 * {draw.format(40)})::bigint"
        " FROM daily_hits WHERE kind = 'download'"
        f" UNION ALL SELECT package, 'project', day, 1 + floor(hits * {draw.format(42)} / 20)"
        f" FROM daily_hits WHERE kind = 'download' AND {draw.format(41)} < 0.25"
        f" UNION ALL SELECT package, 'json', day, 1 + floor(hits * {draw.format(44)} / 50)"
        f" FROM daily_hits WHERE kind = 'download' AND {draw.format(43)} < 0.08"
    )
    conn.execute(
        "INSERT INTO farm_daily (kind, day, hits)"
        " SELECT kind, day, sum(hits) FROM daily_hits GROUP BY kind, day"
    )
    conn.execute(
        "INSERT INTO download_totals (package, all_time, last_30_days)"
        " SELECT package, sum(hits), coalesce(sum(hits) FILTER"
        "   (WHERE day > (now() AT TIME ZONE 'UTC')::date - 30), 0)"
        " FROM daily_hits WHERE kind = 'download' GROUP BY package"
    )
    # a day's log, about 2.5 lines of ~660 bytes per download
    conn.execute(
        "INSERT INTO log_cursors (identity, read_to, lines, bad_lines, updated_at)"
        " SELECT encode(sha256(convert_to('access.log of ' || day, 'UTF8')), 'hex'),"
        " hits * 5 / 2 * 660, hits * 5 / 2, hits / 400, day + interval '1 day'"
        " FROM farm_daily WHERE kind = 'download'"
    )
