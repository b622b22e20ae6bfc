"""The scale benchmarks (bench/fill_db.py, bench_queue.py, bench_slaves.py) at tiny sizes.

Only so the harness never rots: every figure is produced and well-formed, and the synthetic
database follows the queue's rules. No timing is asserted; the machine is shared and noisy.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from piwheels.abis import sorted_abis
from piwheels.db.database import Database
from piwheels.db.embedded.cluster import EmbeddedPostgres

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_queue  # noqa: E402
import bench_slaves  # noqa: E402
import fill_db  # noqa: E402

TINY = fill_db.Sizes(packages=300, versions=2400, builds=1500)


@pytest.fixture(scope="module")
def bench_pg() -> Iterator[Path]:
    """A data directory for the benchmarks' own cluster, stopped afterwards.

    Under /tmp, not pytest's tmp_path: as root the server runs as another account, which must
    be able to traverse every directory above its data (see tests/conftest.py).
    """
    with tempfile.TemporaryDirectory(prefix="piwbench-pg-") as home:
        data_dir = Path(home) / "data"
        try:
            yield data_dir
        finally:
            EmbeddedPostgres(data_dir).stop()


def _queue(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return conn.execute("SELECT * FROM build_queue ORDER BY version_id").fetchall()


def _lengths_agree(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
    kept = {abi: n for abi, n in conn.execute("SELECT * FROM queue_lengths()") if n}
    counted = dict(conn.execute("SELECT abi_tag, count(*) FROM build_queue GROUP BY 1").fetchall())
    return kept == counted


def test_fill_makes_a_queue_that_follows_the_rules(bench_pg: Path) -> None:
    server = fill_db.bench_server(bench_pg)
    name = fill_db.filled_database(server, TINY, log=lambda _: None)
    notes: list[str] = []
    assert fill_db.filled_database(server, TINY, log=notes.append) == name
    assert any("reusing" in note for note in notes)
    with psycopg.connect(server.dsn(name), autocommit=True) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM packages), (SELECT count(*) FROM versions),"
            " (SELECT count(*) FROM builds),"
            " (SELECT count(*) FROM builds WHERE covers_from = 300),"
            " (SELECT count(*) FROM builds b WHERE b.status"
            "  AND NOT EXISTS (SELECT 1 FROM files f WHERE f.build_id = b.build_id)),"
            " (SELECT count(DISTINCT abi_tag) FROM build_queue)"
        ).fetchone()
        assert counts is not None
        packages, versions, builds, none_builds, without_files, queued_abis = counts
        assert (packages, versions, builds) == (300, 2400, 1500)
        assert abs(none_builds - 1500 * TINY.none_fraction) < 0.15 * 1500 * TINY.none_fraction
        assert without_files == 0
        assert queued_abis == len(TINY.abis)
        # The queue the fill left (requeue_all) is the one recording each version would give.
        before = _queue(conn)
        conn.execute("SELECT queue_version(version_id) FROM versions")
        assert _queue(conn) == before
        assert _lengths_agree(conn)
    copy = fill_db.scratch_copy(server, name, "smoke_copy")
    with psycopg.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (2400,)
    server.drop_database("smoke_copy")
    server.stop()


def test_requeue_all_agrees_with_queue_version(bench_pg: Path) -> None:
    """requeue_all recomputes the queue (migration 0004) as recording each version would."""
    server = fill_db.bench_server(bench_pg)
    name = fill_db.filled_database(server, TINY, log=lambda _: None)
    dsn = fill_db.scratch_copy(server, name, "smoke_requeue")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            before = _queue(conn)
            conn.execute("TRUNCATE build_queue")
            assert _lengths_agree(conn)
            conn.execute("SELECT requeue_all()")
            assert _queue(conn) == before
            assert _lengths_agree(conn)
            # an ABI between two others, and one gone: versions move both ways
            database = Database(fill_db.master_dsn(dsn))
            database.set_build_abis(sorted_abis(["cp39", "cp311", "cp312", "cp313"]))
            database.close()
            requeued = _queue(conn)
            assert requeued != before
            conn.execute("SELECT queue_version(version_id) FROM versions")
            assert _queue(conn) == requeued
            assert _lengths_agree(conn)
    finally:
        server.drop_database("smoke_requeue")
        server.stop()


def _check_rows(rows: list[object]) -> None:
    assert rows
    for row in rows:
        assert isinstance(row, bench_queue.Row)
        assert row.unit and row.reference_name
        assert math.isfinite(row.measured) and row.measured >= 0
        assert math.isfinite(row.reference) and row.reference > 0


def test_bench_queue_tiny(bench_pg: Path) -> None:
    sizes = dict(bench_queue.SIZES) | dict(bench_queue.QUICK)
    rows = bench_queue.run(sizes, data_dir=bench_pg)
    _check_rows(list(rows))
    names = " / ".join(row.name for row in rows)
    for expected in ("get_queue", "requeue_all", "new version queued", "log_build"):
        assert expected in names


def test_bench_slaves_tiny(bench_pg: Path) -> None:
    sizes = dict(bench_slaves.SIZES) | dict(bench_slaves.QUICK)
    rows = bench_slaves.run(sizes, data_dir=bench_pg)
    _check_rows(list(rows))
    recorded = next(row for row in rows if "builds recorded per second" in row.name)
    worst = next(row for row in rows if row.name.endswith("reply latency, max"))
    # the slaves really built and the master recorded: the protocol ran end to end
    assert recorded.measured > 0
    assert worst.met  # no slave ever gave up on the master
    # every slave that said HELLO in the same instant as all the others was answered
    storm = next(row for row in rows if row.name.endswith("first reply, max"))
    assert storm.met
