"""The whole farm, end to end: real PyPI-like index, real PostgreSQL, real slaves, real pip."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from clients import client_env, new_venv, run, uv_binary
from farm import MasterThread, SlaveProcess, rows, wait_for
from piwheels.master_support.config import MasterConfig
from piwheels.web.server import serve

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
    # nothing half-written is left, where files arrive or beside the wheels
    assert not list(farm_config.output_path.rglob("*.part"))
    deps = rows(dsn, "SELECT filename, tool, dependency FROM dependencies WHERE tool = 'pip'")
    assert deps == [("piwtest_pure-1.0-py3-none-any.whl", "pip", "piwtest-cext")]
    log = rows(
        dsn,
        "SELECT o.output FROM output o JOIN builds b USING (build_id) "
        "JOIN versions v USING (version_id) WHERE v.package = 'piwtest-broken' LIMIT 1",
    )
    assert "always fails to build" in log[0][0]

    # The Scribe has published what the farm built: pip (with hashes) and uv install it.
    install_from_the_farm(farm_config, tmp_path, files)


def install_from_the_farm(config: MasterConfig, tmp_path: Path, files: list[tuple]) -> None:
    simple = config.output_path / "simple"
    cp311 = "piwtest_cext-1.0-cp311-cp311-linux_x86_64.whl"
    wait_for(
        lambda: (
            (simple / "piwtest-cext" / "index.json").exists()
            and cp311 in (simple / "piwtest-cext" / "index.json").read_text()
        ),
        timeout=30,
        what="the index pages",
    )
    hashes = {name: sha256 for name, _, sha256 in files}
    wanted = {"piwtest_pure-1.0-py3-none-any.whl", cp311}
    for project, wheel in (
        ("piwtest-pure", "piwtest_pure-1.0-py3-none-any.whl"),
        ("piwtest-cext", cp311),
    ):
        page = json.loads((simple / project / "index.json").read_text())
        [entry] = [f for f in page["files"] if f["filename"] == wheel]
        assert entry["hashes"] == {"sha256": hashes[wheel]}
        assert entry["core-metadata"]  # PEP 658: the .metadata is there, with its hash
    env = client_env(tmp_path)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"piwtest-pure==1.0 --hash=sha256:{hashes['piwtest_pure-1.0-py3-none-any.whl']}\n"
        f"piwtest-cext==1.0 --hash=sha256:{hashes[cp311]}\n"
    )
    with serve(config.output_path) as server:
        pip_python = new_venv(tmp_path / "pip-venv", env, with_pip=True)
        run(
            [
                pip_python,
                "-m",
                "pip",
                "install",
                "--no-cache-dir",
                "--index-url",
                f"{server.url}/simple/",
                "--require-hashes",
                "-r",
                requirements,
            ],
            env,
        )
        assert run([pip_python, "-c", CHECK], env).split() == ["hello", "from", "piwtest-pure", "5"]
        uv = uv_binary(tmp_path)
        uv_python = new_venv(tmp_path / "uv-venv", env, with_pip=False)
        server.clear_requests()
        run(
            [
                uv,
                "pip",
                "install",
                "--no-config",
                "--python",
                uv_python,
                "--color",
                "never",
                "--index-url",
                f"{server.url}/simple/",
                "piwtest-pure",
            ],
            env,
        )
        assert run([uv_python, "-c", CHECK], env).split()[-1] == "5"
        server.wait_idle()
        fetched = {r.path.rsplit("/", 1)[-1] for r in server.requests if r.status == 200}
    # uv resolved from the .metadata files and downloaded only the wheels it installed
    assert {w + ".metadata" for w in wanted} <= fetched
    assert {name for name in fetched if name.endswith(".whl")} == wanted


CHECK = "import piwtest_cext, piwtest_pure;print(piwtest_pure.greet(), piwtest_cext.add(2, 3))"
