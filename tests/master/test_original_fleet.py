"""Issue #18: the original piwheels' (0.23) slaves, unchanged, build for our master: alone, and
beside one of ours on the same queue. tests/original_fleet.py runs the real slave as an
unprivileged user; tests/protocols/test_original.py checks each difference of its dialect."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from farm import MasterThread, SlaveProcess, configure, rows, wait_for
from original_fleet import FILE_PORT, SLAVE_PORT, OriginalSlave, loopback_host, original_slave_venv
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI

pytestmark = pytest.mark.slow

CATALOGUE = ["piwtest-pure", "piwtest-cext", "piwtest-abi3", "piwtest-broken", "piwtest-py311"]
EXPECTED = [  # (package, version, abi, status): the broken one fails, the rest build
    ("piwtest-abi3", "1.0", "cp311", True),
    ("piwtest-broken", "1.0", "cp311", False),
    ("piwtest-cext", "1.0", "cp311", True),
    ("piwtest-pure", "1.0", "cp311", True),
    ("piwtest-py311", "1.0", "cp311", True),
]
BUILDS = """
    SELECT v.package, v.version, b.abi_tag, b.status, b.built_by
    FROM builds b JOIN versions v USING (version_id) WHERE b.requeued_at IS NULL
    ORDER BY 1, 2, 3
"""


@pytest.fixture
def fleet_config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    """A master whose insecure queues (the original speaks no CurveZMQ) are on the ports the
    original knows, on a loopback address of the test's own, its secure ones elsewhere; one
    ABI, the one Debian's python3 (the original's interpreter) builds for."""
    original_slave_venv()  # skips, with the reason, where it cannot run
    host = loopback_host()
    return configure(
        master_dsn,
        tmp_path,
        pypi_index,
        ["cp311"],
        packages=CATALOGUE,
        insecure_slave_queue=f"tcp://{host}:{SLAVE_PORT}",
        insecure_file_queue=f"tcp://{host}:{FILE_PORT}",
    )


def host_of(config: MasterConfig) -> str:
    assert config.insecure_slave_queue is not None
    return config.insecure_slave_queue.removeprefix("tcp://").rsplit(":", 1)[0]


def queued(dsn: str) -> int:
    return int(rows(dsn, "SELECT count(*) FROM build_queue")[0][0])


def all_built(dsn: str) -> bool:
    return len(rows(dsn, BUILDS)) == len(CATALOGUE)


def check_files(config: MasterConfig) -> list[str]:
    """Every recorded file is on disk with its size and SHA256; their names."""
    files = rows(
        config.dsn,
        "SELECT b.package, f.filename, f.filesize, f.filehash "
        "FROM files f JOIN builds bb USING (build_id) JOIN versions b USING (version_id) "
        "ORDER BY 2",
    )
    for package, filename, size, sha256 in files:
        data = (config.output_path / "simple" / package / filename).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
    assert not list(config.output_path.rglob("*.part"))
    return [f[1] for f in files]


def test_an_original_slave_builds_the_catalogue(fleet_config: MasterConfig) -> None:
    dsn = fleet_config.dsn
    master = MasterThread(fleet_config).start()
    try:
        wait_for(lambda: queued(dsn) == len(CATALOGUE), timeout=30, what="the catalogue queued")
        with OriginalSlave(host_of(fleet_config), label="veteran") as slave:
            wait_for(lambda: not queued(dsn), timeout=240, what="the queue to drain")
            wait_for(lambda: all_built(dsn), timeout=30, what="every build")
            slave_log = slave.log()
    finally:
        master.stop()
    builds = rows(dsn, BUILDS)
    assert [b[:4] for b in builds] == EXPECTED
    assert len({b[4] for b in builds}) == 1
    assert check_files(fleet_config) == [
        "piwtest_abi3-1.0-cp39-abi3-linux_x86_64.whl",
        "piwtest_cext-1.0-cp311-cp311-linux_x86_64.whl",
        "piwtest_pure-1.0-py3-none-any.whl",
        "piwtest_py311-1.0-py3-none-any.whl",
    ]
    # the failure's log came through; the slave never saw an error from the master
    [(output,)] = rows(
        dsn, "SELECT output FROM output o JOIN builds b USING (build_id) WHERE NOT b.status"
    )
    assert "piwtest-broken" in output or "error" in output.lower()
    assert "invalid message" not in slave_log
    # the compiled wheel's libraries: on a merged-/usr Debian no package owns the paths the
    # original finds (its tool ""), which are kept as such and shown on the project page
    libraries = rows(dsn, "SELECT dependency FROM dependencies WHERE tool = 'library'")
    assert any("libc.so" in lib for (lib,) in libraries), libraries
    page = fleet_config.output_path / "project" / "piwtest-cext" / "index.html"
    wait_for(lambda: page.exists() and "libc.so" in page.read_text(), timeout=30, what="the page")


def test_an_original_slave_and_ours_build_one_queue(
    fleet_config: MasterConfig, python311: Path, tmp_path: Path
) -> None:
    dsn = fleet_config.dsn
    master = MasterThread(fleet_config).start()
    ours = None
    try:
        wait_for(lambda: queued(dsn) == len(CATALOGUE), timeout=30, what="the catalogue queued")
        with OriginalSlave(host_of(fleet_config), label="veteran"):
            ours = SlaveProcess(fleet_config, python311, tmp_path)
            wait_for(lambda: not queued(dsn), timeout=240, what="the queue to drain")
            wait_for(lambda: all_built(dsn), timeout=30, what="every build")
    finally:
        if ours is not None:
            ours.stop()
        master.stop()
    builds = rows(dsn, BUILDS)
    assert [b[:4] for b in builds] == EXPECTED
    # both slaves were given builds from the one queue (each asks as soon as it connects)
    assert len({b[4] for b in builds}) == 2
    assert len(check_files(fleet_config)) == 4


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def test_an_original_slave_comes_back_after_a_master_restart_mid_build(
    fleet_config: MasterConfig,
) -> None:
    """The original cannot resume a build: its request to the old master goes unanswered, and
    after its master timeout (5 minutes, fixed) it says HELLO again and is given the builds the
    new master queued anew. Its clocks run 20 times fast here (libfaketime), so that wait
    takes 15 s; the master's are real."""
    if not FAKETIME.exists():
        pytest.skip(f"needs libfaketime ({FAKETIME}; Debian's faketime package)")
    dsn = fleet_config.dsn
    fast = {"LD_PRELOAD": str(FAKETIME), "FAKETIME": "+0 x20"}
    master = MasterThread(fleet_config).start()
    try:
        wait_for(lambda: queued(dsn) == len(CATALOGUE), timeout=30, what="the catalogue queued")
        with OriginalSlave(host_of(fleet_config), label="veteran", env=fast) as slave:
            wait_for(lambda: "Building package" in slave.log(), timeout=60, what="a build")
            master.stop()
            master = MasterThread(fleet_config).start()
            wait_for(lambda: "Resetting connection" in slave.log(), timeout=120, what="a reset")
            wait_for(lambda: not queued(dsn), timeout=240, what="the queue to drain")
            wait_for(lambda: all_built(dsn), timeout=30, what="every build")
    finally:
        master.stop()
    assert [b[:4] for b in rows(dsn, BUILDS)] == EXPECTED
    assert len(check_files(fleet_config)) == 4
