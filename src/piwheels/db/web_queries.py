"""The reads behind the web output: a project's page, the index's project list, statistics.

Each function takes an open connection and runs plain SELECTs. The Scribe's page-writing
children call them on connections of their own, and the Oracles for Big Brother's figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg
from packaging.version import InvalidVersion, Version

from piwheels.db.hits import farm_downloads, project_downloads
from piwheels.failures import parse_wants
from piwheels.records.builds import BuildState, describe_cross_check
from piwheels.records.projects import (
    AbiCell,
    BuildInfo,
    ProjectData,
    QueuePlace,
    SearchEntry,
    Statistics,
    VersionInfo,
    WheelFile,
    WheelOrigin,
)

Conn = psycopg.Connection[Any]


# How many entries of a queued version's own (tier, rank) are counted one by one to place it,
# walking the queue's index (build_queue_order). A (tier, rank) can hold a million entries
# (every project's newest release), and a page can show hundreds of queued versions: beyond
# this, the place is given as a range.
PLACE_COUNT_CAP = 1000


def project_data(conn: Conn, package: str) -> ProjectData | None:
    """Everything the project's pages show, or None for a package we do not know."""
    with conn.transaction():
        row = conn.execute(
            "SELECT display_name, summary, description, status, coalesce(status_reason, '') "
            "FROM packages WHERE package = %s",
            (package,),
        ).fetchone()
        if row is None:
            return None
        display_name, summary, description, status, status_reason = row
        downloads = project_downloads(conn, package)
        abis = conn.execute(
            "SELECT abi_tag, python_order FROM build_abis ORDER BY python_order"
        ).fetchall()
        versions = newest_first(
            conn.execute(
                "SELECT version_id, version, released, yanked, removed, has_sdist, skip "
                "FROM versions WHERE package = %s",
                (package,),
            ).fetchall()
        )
        skips = conn.execute(
            "SELECT s.version_id, s.abi_tag, s.reason FROM version_abi_skips s "
            "JOIN versions v USING (version_id) WHERE v.package = %s",
            (package,),
        ).fetchall()
        queued = queue_places(conn, package)
        builds = [
            _build_row(row)
            for row in conn.execute(
                "SELECT b.version_id, b.covers_from, b.build_id, b.abi_tag, b.status, "
                "b.built_at, b.duration, b.built_by, b.cause, b.summary, b.needs, b.wants, "
                "b.outcome, b.retry_at, b.requeued_at IS NOT NULL "
                "FROM builds b JOIN versions v USING (version_id) "
                "WHERE v.package = %s ORDER BY b.build_id",
                (package,),
            )
        ]
        files = conn.execute(
            "SELECT b.version_id, f.filename, f.filesize, f.filehash, f.requires_python, "
            "b.built_at, b.abi_tag, CASE WHEN v.yanked THEN coalesce(v.yanked_reason, '') END, "
            "ARRAY(SELECT d.dependency FROM dependencies d "
            "WHERE d.filename = f.filename AND d.tool = 'apt' ORDER BY 1), "
            "ARRAY(SELECT d.dependency FROM dependencies d "
            "WHERE d.filename = f.filename AND d.tool = 'library' ORDER BY 1), "
            # its cross-check (0016): the verdict (NULL: none asked), how many checkers built it
            "c.verdict, (SELECT count(*) FROM jsonb_array_elements(coalesce(c.checks, '[]')) "
            "AS x WHERE (x ->> 'built')::boolean), f.withheld, f.withheld_for "
            "FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id) "
            "LEFT JOIN cross_checks c USING (build_id) "
            "WHERE v.package = %s ORDER BY f.filename",
            (package,),
        ).fetchall()
    skip_reasons = {(vid, abi): reason for vid, abi, reason in skips}
    builds_of: dict[int, list[_Build]] = defaultdict(list)
    for build in builds:
        builds_of[build.version_id].append(build)
    files_of: dict[int, list[WheelFile]] = defaultdict(list)
    for (
        vid,
        name,
        size,
        sha,
        requires,
        built_at,
        abi,
        yank,
        apt,
        libs,
        verdict,
        checks,
        withheld,
        withheld_for,
    ) in files:
        files_of[vid].append(
            WheelFile(
                name,
                size,
                sha,
                requires,
                built_at,
                yank,
                None,
                abi,
                (*apt,),
                (*libs,),
                cross_check=describe_cross_check(verdict, checks),
                withheld=withheld,
                withheld_for=(*withheld_for,),
            )
        )
    infos = []
    for vid, version, released, yanked, removed, has_sdist, skip in versions:
        version_skip = _version_skip(removed, has_sdist, released, skip)
        infos.append(
            VersionInfo(
                version=version,
                released=released,
                yanked=yanked,
                skip=version_skip,
                cells=_cells(vid, abis, builds_of[vid], skip_reasons, queued, version_skip, yanked),
                builds=[b.info for b in builds_of[vid]],
                files=files_of[vid],
            )
        )
    return ProjectData(
        name=package,
        display_name=display_name,
        summary=summary,
        description=description,
        abis=[abi for abi, _ in abis],
        versions=infos,
        downloads=downloads,
        status=status,
        status_reason=status_reason,
    )


class _Build(NamedTuple):
    version_id: int
    covers_from: int | None
    info: BuildInfo


def _build_row(row: tuple[Any, ...]) -> _Build:
    vid, covers, build_id, abi, status, built_at, duration, built_by, cause, summary = row[:10]
    needs, wants, outcome, retry_at, requeued = row[10:]
    # what a dep-wait on PyPI waits for is its build requirement, kept among its wants
    if not needs and outcome == "dep-wait":
        needs = [w.name for w in parse_wants(wants) if w.kind == "requirement"]
    info = BuildInfo(
        build_id,
        abi,
        status,
        built_at,
        duration,
        built_by,
        cause,
        summary,
        tuple(needs),
        outcome,
        retry_at,
        requeued,
    )
    return _Build(vid, covers, info)


def newest_first(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Version rows (version_id, version, released, ...) newest first by PEP 440's order, with
    ``packaging``; versions that are not PEP 440 after them, newest upload first. Upload times
    do not order releases: a backport is uploaded after the newer release, and a version with
    no files on PyPI has no upload time at all."""
    ordered: list[tuple[Version, int, tuple[Any, ...]]] = []
    others: list[tuple[datetime, int, tuple[Any, ...]]] = []
    for row in rows:
        try:
            ordered.append((Version(row[1]), row[0], row))
        except InvalidVersion:
            others.append((row[2] or _NEVER, row[0], row))
    ordered.sort(key=lambda item: item[:2], reverse=True)
    others.sort(key=lambda item: item[:2], reverse=True)
    return [row for *_, row in ordered] + [row for *_, row in others]


_NEVER = datetime.min.replace(tzinfo=UTC)


def queue_places(conn: Conn, package: str) -> dict[tuple[int, str], QueuePlace]:
    """Where each of *package*'s queued versions stands: {(version_id, abi_tag): place}.

    The entries of every (tier, rank) before its own come from the queue's kept lengths
    (migration 0011: the totals plus the journal not yet folded into them); those of its own
    (tier, rank) before it are counted by index, up to PLACE_COUNT_CAP, beyond which the place
    is a range as wide as the rest of that (tier, rank).
    """
    rows = conn.execute(
        """
        SELECT q.version_id, q.abi_tag, q.tier, q.rank, before.n, bucket.n, own.n, now()
        FROM build_queue q
        JOIN versions v USING (version_id)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(n), 0)::bigint FROM (
                SELECT l.length FROM build_queue_lengths l
                WHERE l.abi_tag = q.abi_tag AND (l.tier, l.rank) < (q.tier, q.rank)
                UNION ALL
                SELECT j.delta FROM build_queue_journal j
                WHERE j.abi_tag = q.abi_tag AND (j.tier, j.rank) < (q.tier, q.rank)
            ) AS c(n)
        ) AS before(n)
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(n), 0)::bigint FROM (
                SELECT l.length FROM build_queue_lengths l
                WHERE l.abi_tag = q.abi_tag AND l.tier = q.tier AND l.rank = q.rank
                UNION ALL
                SELECT j.delta FROM build_queue_journal j
                WHERE j.abi_tag = q.abi_tag AND j.tier = q.tier AND j.rank = q.rank
            ) AS c(n)
        ) AS bucket(n)
        CROSS JOIN LATERAL (
            SELECT count(*) FROM (
                SELECT 1 FROM build_queue o
                WHERE o.abi_tag = q.abi_tag AND o.tier = q.tier AND o.rank = q.rank
                  AND (o.popularity, o.released) > (q.popularity, q.released)
                LIMIT %s
            ) AS a
        ) AS own(n)
        WHERE v.package = %s
        """,
        (PLACE_COUNT_CAP, package),
    ).fetchall()
    places = {}
    for vid, abi, tier, rank, before, bucket, own, now in rows:
        # the version itself is one of its bucket's entries, and never ahead of itself
        most = own if own < PLACE_COUNT_CAP else max(own, bucket - 1)
        places[vid, abi] = QueuePlace(tier, rank, before + own, before + most, now)
    return places


def _version_skip(removed: bool, has_sdist: bool, released: datetime | None, skip: str) -> str:
    if removed:
        return "removed from PyPI"
    if skip:
        return skip
    if not has_sdist:
        # a release time is its first file's upload: without one, PyPI has no file of it
        return "binary only: no sdist on PyPI" if released is not None else "no files on PyPI"
    return ""


def _cells(
    vid: int,
    abis: list[tuple[str, int]],
    builds: list[_Build],
    skip_reasons: dict[tuple[int, str], str],
    queued: dict[tuple[int, str], QueuePlace],
    version_skip: str,
    yanked: bool,
) -> dict[str, AbiCell]:
    """Each ABI's state for one version, by the same rules the queue follows."""
    cells = {}
    # at most one ABI at a time: the lowest not yet attempted (see the build queue)
    queued_order = next((order for abi, order in abis if (vid, abi) in queued), None)
    standing = [b.info for b in builds if not b.info.requeued]
    for abi, order in abis:
        attempts = [b for b in standing if b.abi_tag == abi]
        covering = [
            b.info
            for b in builds
            if b.info.status and b.covers_from is not None and b.covers_from <= order
        ]
        if attempts:
            last = attempts[-1]
            cells[abi] = AbiCell(_STATES[last.outcome], failure_reason(last), last.build_id)
        elif covering:
            cells[abi] = AbiCell(
                BuildState.COVERED,
                f"served by the {covering[0].abi_tag} build",
                covering[0].build_id,
            )
        elif (vid, abi) in skip_reasons:
            cells[abi] = AbiCell(BuildState.SKIPPED, skip_reasons[vid, abi], None)
        elif version_skip:
            cells[abi] = AbiCell(BuildState.SKIPPED, version_skip, None)
        elif yanked:
            cells[abi] = AbiCell(BuildState.YANKED, "yanked on PyPI: not built", None)
        elif (vid, abi) in queued:
            place = queued[vid, abi]
            cells[abi] = AbiCell(BuildState.PENDING, queued_reason(place), None, place)
        elif queued_order is not None and queued_order < order:
            cells[abi] = AbiCell(BuildState.PENDING, "waiting for a lower ABI", None)
        else:
            cells[abi] = AbiCell(BuildState.PENDING, "not queued yet", None)
    return cells


_STATES = {
    "built": BuildState.BUILT,
    "failed": BuildState.FAILED,
    "dep-wait": BuildState.DEP_WAIT,
    "give-back": BuildState.GIVE_BACK,
}


def failure_reason(build: BuildInfo) -> str:
    """What a failed build's cell says: what it needs or waits for, or its cause."""
    if build.status:
        return ""
    if build.outcome == "dep-wait" and build.cause == "build-requirement":
        return f"waits for {', '.join(build.needs)} on PyPI"
    if build.needs:
        return f"needs {', '.join(build.needs)} on the {build.abi_tag} builders"
    if build.outcome == "give-back" and build.retry_at is not None:
        return f"{build.cause}: tried again after {_minute(build.retry_at)} UTC"
    return build.cause or "unknown"


def _minute(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(" ", "minutes")[:16]


TIER_NAMES = {0: "operator's priority", 1: "newest release", 2: "backlog"}


def queued_reason(place: QueuePlace) -> str:
    """What a queued cell says: its tier and how many builds are ahead of it."""
    if place.ahead == place.ahead_at_most:
        ahead = f"{place.ahead:,} ahead"
    else:
        ahead = f"{place.ahead:,} to {place.ahead_at_most:,} ahead"
    return f"queued ({TIER_NAMES.get(place.tier, 'backlog')}): {ahead}"


def indexed_projects(conn: Conn) -> list[str]:
    """The projects with published files served (not withheld as a whole: PyPI removed or
    quarantines them, migration 0018): the index root lists these."""
    cur = conn.execute(
        "SELECT package FROM packages WHERE files > 0 "
        "AND NOT (removal_applied OR quarantine_applied) ORDER BY 1"
    )
    return [name for (name,) in cur]


def search_entries(conn: Conn) -> list[SearchEntry]:
    """Every project with published files served, its summary, and its counts of versions and
    files.

    Most projects are listed, so one pass over all versions, hashed, beats visiting each
    project's versions by index (38 s -> 10 s at PyPI's scale): the planner, expecting few
    rows per project, picks the latter unless told not to.
    """
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        conn.execute("SET LOCAL enable_mergejoin = off")
        conn.execute("SET LOCAL work_mem = '256MB'")
        cur = conn.execute(
            "SELECT p.package, p.summary, coalesce(v.n, 0), p.files FROM packages p "
            "LEFT JOIN (SELECT package, count(*) AS n FROM versions WHERE NOT removed "
            "GROUP BY package) AS v USING (package) "
            "WHERE p.files > 0 AND NOT (p.removal_applied OR p.quarantine_applied) ORDER BY 1"
        )
        return [SearchEntry(*row) for row in cur]


def sitemap_projects(conn: Conn) -> Iterator[tuple[str, datetime | None]]:
    """Every project still on PyPI (each has a page), by name, with when its page last had
    something new to say: its newest release or its newest build, whichever is later.

    The rows stream from a server-side cursor: at PyPI's scale there are 600,000, and the
    sitemap is written as they come.
    """
    with conn.transaction():
        # A cursor's plan is made for its first rows (cursor_tuple_fraction 0.1), which here
        # would mean a walk by index per project; every row is read, so plan for them all.
        conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        conn.execute("SET LOCAL work_mem = '256MB'")
        yield from _sitemap_rows(conn)


def _sitemap_rows(conn: Conn) -> Iterator[tuple[str, datetime | None]]:
    with conn.cursor(name="sitemap_projects") as cur:
        cur.itersize = 10_000
        cur.execute(
            "SELECT p.package, greatest(v.released, b.built_at) FROM packages p "
            "LEFT JOIN (SELECT package, max(released) AS released FROM versions "
            "GROUP BY package) AS v USING (package) "
            "LEFT JOIN (SELECT v.package, max(b.built_at) AS built_at FROM builds b "
            "JOIN versions v USING (version_id) GROUP BY v.package) AS b USING (package) "
            "WHERE NOT p.removed ORDER BY 1"
        )
        yield from cur


def statistics(conn: Conn) -> Statistics:
    """The database's half of Big Brother's figures (the disk is measured by the task)."""
    with conn.transaction():
        # kept by the schema (migration 0007): counting them took 4.6 s a minute at PyPI's scale
        kept = dict(conn.execute("SELECT figure, total FROM farm_figures()").fetchall())
        # the last hour's builds are few and found by index (builds_built_at)
        # a give-back is no failure: it is tried again
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT status AND outcome <> 'give-back'), "
            "count(*) FILTER (WHERE outcome = 'give-back') "
            "FROM builds WHERE built_at > now() - interval '1 hour'"
        ).fetchone()
        # a day's builds: tens of thousands at most, found by the same index
        failures: dict[str, dict[str, int]] = {}
        for abi, cause, count in conn.execute(
            "SELECT abi_tag, cause, count(*) FROM builds "
            "WHERE built_at > now() - interval '1 day' AND NOT status "
            "AND outcome <> 'give-back' GROUP BY abi_tag, cause ORDER BY abi_tag, 3 DESC"
        ):
            failures.setdefault(abi, {})[cause] = int(count)
        tiers: dict[str, list[int]] = {}
        for abi, tier, length in conn.execute(
            "SELECT abi_tag, tier, length FROM queue_tier_lengths()"
        ):
            tiers.setdefault(abi, [0, 0, 0])[tier] = int(length)
        downloads, popular = farm_downloads(conn)
    assert row is not None
    return Statistics(
        packages=int(kept["packages"]),
        versions=int(kept["versions"]),
        builds=int(kept["builds"]),
        builds_succeeded=int(kept["builds_succeeded"]),
        builds_last_hour=int(row[0]),
        failures_last_hour=int(row[1]),
        files=int(kept["files"]),
        bytes=int(kept["bytes"]),
        queue={abi: sum(lengths) for abi, lengths in tiers.items()},
        queue_priority={abi: lengths[0] for abi, lengths in tiers.items()},
        queue_newest={abi: lengths[1] for abi, lengths in tiers.items()},
        failures_by_cause=failures,
        disk_free=0,  # the master measures the output disk (master_support/web_requests.py)
        disk_total=0,
        updated=datetime.now(UTC),
        downloads=downloads,
        popular=popular,
        given_back_last_hour=int(row[2]),
    )


def wheel_origins(conn: Conn, package: str) -> list[WheelOrigin]:
    """Each published wheel of *package* with what its provenance says of its build."""
    cur = conn.execute(
        "SELECT f.filename, f.filehash, f.filesize, v.package, v.version, b.abi_tag, "
        "v.sdist_url, v.sdist_sha256, coalesce(o.builder_key, ''), coalesce(o.label, ''), "
        "coalesce(o.os_name, ''), coalesce(o.os_version, ''), coalesce(o.py_version_tag, ''), "
        "f.platform_tag, b.build_id, b.built_at, b.duration, c.verdict, "
        "(SELECT count(*) FROM jsonb_array_elements(coalesce(c.checks, '[]')) AS x "
        "WHERE (x ->> 'built')::boolean) "
        "FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id) "
        "LEFT JOIN build_origins o USING (build_id) LEFT JOIN cross_checks c USING (build_id) "
        "WHERE v.package = %s AND NOT f.withheld",
        (package,),
    )
    return [
        WheelOrigin._make([*row, describe_cross_check(verdict, checks)])
        for *row, verdict, checks in cur
    ]


def build_output(conn: Conn, build_id: int) -> str | None:
    row = conn.execute("SELECT output FROM output WHERE build_id = %s", (build_id,)).fetchone()
    return row[0] if row else None
