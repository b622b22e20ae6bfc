"""bench/bench_gazer.py at tiny sizes: a real master follows a synthetic PyPI end to end.

Only so the benchmark never rots: every figure is produced and well-formed, and every change
the index made was recorded. No timing is asserted; the machine is shared and noisy.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.db.embedded.cluster import EmbeddedPostgres

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_gazer  # noqa: E402


@pytest.fixture(scope="module")
def bench_pg() -> Iterator[Path]:
    """A cluster of the test's own, under /tmp so the server's account can reach it."""
    with tempfile.TemporaryDirectory(prefix="piwbench-gazer-pg-") as home:
        data_dir = Path(home) / "data"
        try:
            yield data_dir
        finally:
            EmbeddedPostgres(data_dir).stop()


def test_bench_gazer_tiny(bench_pg: Path) -> None:
    sizes = dict(bench_gazer.SIZES) | dict(bench_gazer.QUICK)
    sizes |= {"packages": 300, "versions": 2400, "builds": 1500, "changes": 40, "interval": 0.3}
    rows = bench_gazer.run(sizes, data_dir=bench_pg)
    assert len(rows) == 9
    for row in rows:
        assert isinstance(row, bench_gazer.Row)
        assert row.unit and row.reference_name
        assert math.isfinite(row.measured) and row.measured >= 0
        assert math.isfinite(row.reference) and row.reference > 0
        assert row.met in (None, True, False)
    recorded = next(row for row in rows if row.unit == "changes")
    assert recorded.met, "the master did not record every change the index made"
    # who used the machine while the changes were applied: the database and the fetch
    # processes did the work, so each used some
    cpu = {row.name.split(": ", 1)[1]: row.measured for row in rows if "CPU meanwhile" in row.name}
    assert set(cpu) == {
        "PostgreSQL",
        "the fetch processes",
        "the master",
        "the rest (this benchmark's index, the system)",
    }
    assert cpu["PostgreSQL"] > 0 and cpu["the fetch processes"] > 0


def test_bench_gazer_interface() -> None:
    assert set(bench_gazer.QUICK) <= set(bench_gazer.SIZES)
    assert all(isinstance(v, int | float) for v in bench_gazer.SIZES.values())
