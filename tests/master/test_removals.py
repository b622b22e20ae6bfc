"""PyPI's removals and statuses (PEP 792) against a real master following the local index: what
PyPI removes or quarantines leaves the farm's index after the grace, and comes back when PyPI
restores it; an operator's release outlasts the next look; a move lost in a crash is made again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zmq

from farm import MasterThread, ScriptedSlave, build_result, configure, file_state, rows, wait_for
from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.records.builds import PackageVersion
from piwheels.transport import Socket
from pypi_index import LocalPyPI, make_wheel

GRACE = 3.0  # seconds
PURE, CEXT, ABI3, BROKEN = "piwtest-pure", "piwtest-cext", "piwtest-abi3", "piwtest-broken"
BUILT = [PURE, CEXT, ABI3, BROKEN, "piwtest-py311"]  # the catalogue's buildable 1.0s


def wheel(project: str) -> str:
    return f"{project.replace('-', '_')}-1.0-py3-none-any.whl"


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(
        master_dsn,
        tmp_path,
        pypi_index,
        ["cp311"],
        packages=[],  # all of the index, as PyPI is followed
        cross_check_first=0,
        cross_check_share=0.0,
        removal_grace=timedelta(seconds=GRACE),
    )


@pytest.fixture
def farm(config: MasterConfig, tmp_path: Path) -> Iterator[MasterThread]:
    """A master that has published a wheel of every buildable 1.0 of the catalogue."""
    master = MasterThread(config).start()
    slave = ScriptedSlave(config)
    try:
        slave.hello()
        for _ in BUILT:
            project, version = slave.wait_for_build()
            content = make_wheel(project, version, tmp_path / "wheels").read_bytes()
            built = build_result(file_state(wheel(project), content))
            assert slave.request("BUILT", built)[0] == "SEND"
            assert slave.send_file(content) == "DONE"
            assert slave.request("SENT")[0] == "DONE"
        for project in BUILT:
            wait_for(lambda p=project: listed(config, p), what=f"{project} in its index")
        # the root is rewritten at most every few seconds as projects enter it; now, at once
        assert ask_mr_chase(config, "REBUILD", ("SITE", None))[0] == "DONE"
        wait_for(lambda: all(in_root(config, p) for p in BUILT), what="the index root")
        yield master
    finally:
        slave.close()
        master.stop()


def index_page(config: MasterConfig, project: str) -> dict[str, Any]:
    path = config.output_path / "simple" / project / "index.json"
    return json.loads(path.read_text()) if path.exists() else {}


def listed(config: MasterConfig, project: str) -> bool:
    """Whether the project's index offers its wheel, and the wheel is where it points."""
    files = [f["filename"] for f in index_page(config, project).get("files", [])]
    return wheel(project) in files and served(config, project)


def served(config: MasterConfig, project: str) -> bool:
    return (config.output_path / "simple" / project / wheel(project)).exists()


def held(config: MasterConfig, project: str) -> bool:
    """Out of the served tree, in the withheld directory, and out of the index."""
    out = (config.withheld_dir / project / wheel(project)).exists() and not served(config, project)
    return out and wheel(project) not in json.dumps(index_page(config, project))


def in_root(config: MasterConfig, project: str) -> bool:
    root = config.output_path / "simple" / "index.json"
    return root.exists() and f'"{project}"' in root.read_text()


def project_page(config: MasterConfig, project: str) -> str:
    path = config.output_path / "project" / project / "index.html"
    return path.read_text() if path.exists() else ""


def ask_mr_chase(config: MasterConfig, action: str, data: Any) -> tuple[str, Any]:
    """As piw-add, piw-rebuild and the like do."""
    context: zmq.Context[Any] = zmq.Context()
    with Socket(zmq.REQ, reversed(protocols.mr_chase), context=context) as tool:
        tool.connect(config.import_queue)
        tool.send(action, data)
        assert tool.poll(20_000)
        answer = tool.recv()
    context.term()
    return answer


def release(config: MasterConfig, project: str) -> tuple[str, Any]:
    """What ``piw-add PROJECT 1.0 --release`` asks of Mr. Chase."""
    return ask_mr_chase(config, "RELEASE", PackageVersion(project, "1.0"))


def test_removed_and_quarantined_wheels_leave_the_index_and_come_back(
    config: MasterConfig, farm: MasterThread, pypi_index: LocalPyPI, fresh_database: str
) -> None:
    pypi_index.remove_version(PURE, "1.0")
    pypi_index.set_status(CEXT, "quarantined", "malware in setup.py")
    pypi_index.set_status(ABI3, "archived", "finished")
    pypi_index.remove_project(BROKEN)
    changes = "SELECT package, removed, status FROM packages WHERE package IN (%s, %s) ORDER BY 1"
    recorded_changes = [(BROKEN, True, "active"), (CEXT, False, "quarantined")]
    wait_for(
        lambda: rows(config.dsn, changes, BROKEN, CEXT) == recorded_changes,
        what="PyPI's changes recorded",
    )
    recorded = time.monotonic()
    # within the grace they are still served
    assert all(listed(config, p) for p in (PURE, CEXT, BROKEN))
    for project in (PURE, CEXT, BROKEN):
        wait_for(lambda p=project: held(config, p), what=f"{project} withheld")
    assert time.monotonic() - recorded > GRACE - 1.0
    # the quarantine is passed on in the farm's index (PEP 792), which offers none of its files
    cext = index_page(config, CEXT)
    assert cext["project-status"] == {"status": "quarantined", "reason": "malware in setup.py"}
    assert cext["files"] == []
    wait_for(lambda: not in_root(config, CEXT) and not in_root(config, BROKEN), what="the root")
    assert in_root(config, PURE)  # it has versions still listed
    wait_for(lambda: "withheld: quarantined on PyPI" in project_page(config, CEXT), what="page")
    assert "Quarantined on PyPI as unsafe" in project_page(config, CEXT)
    assert "withheld: removed from PyPI" in project_page(config, PURE)
    # archived: served and marked, its page says so
    assert listed(config, ABI3)
    archived = index_page(config, ABI3)["project-status"]
    assert archived == {"status": "archived", "reason": "finished"}
    wait_for(lambda: "Archived on PyPI" in project_page(config, ABI3), what="the archived page")

    # the operator publishes the removed release after all: it stays at the next looks
    assert release(config, PURE)[0] == "DONE"
    assert served(config, PURE)
    assert release(config, CEXT)[0] == "ERROR"  # never around a quarantine
    wait_for(lambda: listed(config, PURE), what="the released wheel in its index")
    time.sleep(3 * config.pypi_interval)
    assert listed(config, PURE)

    # a master that died between recording the withholding and the move: the file is still
    # served, the database says it is not out yet; the next look moves it
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("UPDATE files SET moved_out = false WHERE filename = %s", (wheel(BROKEN),))
    (config.withheld_dir / BROKEN / wheel(BROKEN)).rename(
        config.output_path / "simple" / BROKEN / wheel(BROKEN)
    )
    wait_for(lambda: held(config, BROKEN), what="the lost move made again")

    pypi_index.set_status(CEXT, "active")
    pypi_index.restore_project(BROKEN)
    for project in (CEXT, BROKEN):
        wait_for(lambda p=project: listed(config, p), what=f"{project} back in its index")
    assert "project-status" not in index_page(config, CEXT)
    wait_for(lambda: in_root(config, CEXT) and in_root(config, BROKEN), what="the root again")
    pypi_index.restore_version(PURE, "1.0")  # listed again: the operator's keep is forgotten
    kept = "SELECT bool_or(kept) FROM versions WHERE package = %s"
    wait_for(lambda: rows(config.dsn, kept, PURE) == [(False,)], what="the keep forgotten")
    assert listed(config, PURE)
