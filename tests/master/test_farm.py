"""The whole farm, end to end: real PyPI-like index, real PostgreSQL, real slaves, real pip."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from farm import MasterThread, SlaveProcess, rows, wait_for
from piwheels.master.config import MasterConfig

pytestmark = pytest.mark.slow

QUEUE = """
    SELECT q.abi_tag, v.package, v.version FROM build_queue q JOIN versions v USING (version_id)
    ORDER BY 1, 2, 3
"""
BUILDS = """
    SELECT v.package, v.version, b.abi_tag, b.status
    FROM builds b JOIN versions v USING (version_id)
    ORDER BY 1, 2, 3
"""


def queue(dsn: str) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in rows(dsn, QUEUE)]


def test_two_abis_build_the_catalogue(
    farm_config: MasterConfig, master: MasterThread, python39: Path, python311: Path, tmp_path: Path
) -> None:
    dsn = farm_config.dsn
    # Step 0: Cloud Gazer records the index; everything buildable waits on the lowest ABI,
    # except what Requires-Python keeps off it. The yanked 1.1 is never queued.
    initial = [
        ("cp311", "piwtest-py311", "1.0"),
        ("cp39", "piwtest-abi3", "1.0"),
        ("cp39", "piwtest-broken", "1.0"),
        ("cp39", "piwtest-cext", "1.0"),
        ("cp39", "piwtest-pure", "1.0"),
    ]
    wait_for(lambda: queue(dsn) == initial, timeout=30, what="the initial queue")
    skips = rows(
        dsn,
        "SELECT v.package, s.abi_tag, s.reason FROM version_abi_skips s "
        "JOIN versions v USING (version_id)",
    )
    assert skips == [("piwtest-py311", "cp39", "Requires-Python '>=3.11' excludes Python 3.9")]

    # Step 1: a cp39 slave drains its queue. pure (none) and abi3 (cp39-abi3) are done for good;
    # cext (cp39-specific) and broken (failed) move on to cp311.
    slave39 = SlaveProcess(farm_config, python39, tmp_path)
    try:
        wait_for(
            lambda: not [q for q in queue(dsn) if q[0] == "cp39"],
            timeout=240,
            what="the cp39 queue to drain",
        )
    finally:
        slave39.stop()
    assert queue(dsn) == [
        ("cp311", "piwtest-broken", "1.0"),
        ("cp311", "piwtest-cext", "1.0"),
        ("cp311", "piwtest-py311", "1.0"),
    ]

    # Step 2: a cp311 slave finishes the rest.
    slave311 = SlaveProcess(farm_config, python311, tmp_path)
    try:
        wait_for(lambda: not queue(dsn), timeout=240, what="the cp311 queue to drain")
    finally:
        slave311.stop()
    assert rows(dsn, BUILDS) == [
        ("piwtest-abi3", "1.0", "cp39", True),
        ("piwtest-broken", "1.0", "cp311", False),
        ("piwtest-broken", "1.0", "cp39", False),
        ("piwtest-cext", "1.0", "cp311", True),
        ("piwtest-cext", "1.0", "cp39", True),
        ("piwtest-pure", "1.0", "cp39", True),
        ("piwtest-py311", "1.0", "cp311", True),
    ]
    files = rows(dsn, "SELECT filename, filesize, filehash FROM files ORDER BY filename")
    assert [f[0] for f in files] == [
        "piwtest_abi3-1.0-cp39-abi3-linux_x86_64.whl",
        "piwtest_cext-1.0-cp311-cp311-linux_x86_64.whl",
        "piwtest_cext-1.0-cp39-cp39-linux_x86_64.whl",
        "piwtest_pure-1.0-py3-none-any.whl",
        "piwtest_py311-1.0-py3-none-any.whl",
    ]
    simple = farm_config.output_path / "simple"
    for filename, size, sha256 in files:
        project = filename.split("-")[0].replace("_", "-")
        path = simple / project / filename
        assert path.stat().st_size == size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    # nothing half-written is left beside the wheels
    assert not list(simple.rglob("*.part"))
    deps = rows(dsn, "SELECT filename, tool, dependency FROM dependencies WHERE tool = 'pip'")
    assert deps == [("piwtest_pure-1.0-py3-none-any.whl", "pip", "piwtest-cext")]
    log = rows(
        dsn,
        "SELECT o.output FROM output o JOIN builds b USING (build_id) "
        "JOIN versions v USING (version_id) WHERE v.package = 'piwtest-broken' LIMIT 1",
    )
    assert "always fails to build" in log[0][0]
