"""Cross-checks (#19) against a real master: a second builder of the ABI, with another key,
builds again the first builds of every key, and the hashes must agree."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from farm import (
    MasterThread,
    ScriptedSlave,
    SlaveProcess,
    build_result,
    configure,
    file_state,
    rows,
    wait_for,
)
from piwheels import provenance
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI

BIN = Path(sys.executable).parent
WHEEL = "piwtest_pure-1.0-py3-none-any.whl"
VERDICTS = "SELECT build_id, verdict FROM cross_checks ORDER BY build_id"
CHECKS = "SELECT build_id, verdict, checks FROM cross_checks ORDER BY build_id"


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp311"], packages=["piwtest-pure"])


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    yield running
    running.stop()


def check(slave: ScriptedSlave, content: bytes) -> str:
    """Be handed the check (a BUILD like any other) and report *content*'s wheel."""
    slave.hello()
    assert slave.wait_for_build() == ("piwtest-pure", "1.0")
    action, _ = slave.request("BUILT", build_result(file_state(WHEEL, content)))
    return action


def page_says(config: MasterConfig, text: str) -> bool:
    page = config.output_path / "project" / "piwtest-pure" / "index.html"
    return page.exists() and text in page.read_text()


def test_a_second_builder_that_makes_the_same_wheel_agrees(
    config: MasterConfig, master: MasterThread
) -> None:
    publisher, checker = ScriptedSlave(config, label="first"), ScriptedSlave(config, label="second")
    try:
        publisher.publish(WHEEL, b"the same bytes" * 1000)
        assert publisher.idle()[0] == "SLEEP"  # its own build is never its to check
        # the checker's wheel is compared, never fetched: DONE, not SEND
        assert check(checker, b"the same bytes" * 1000) == "DONE"
    finally:
        publisher.close()
        checker.close()
    assert [verdict for _, verdict in rows(config.dsn, VERDICTS)] == ["agreed"]
    wait_for(lambda: page_says(config, "built identically by 2 builders"), what="the page")
    statement = config.output_path / "simple" / "piwtest-pure" / (WHEEL + provenance.SUFFIX)
    wait_for(
        lambda: statement.exists() and "built identically by 2 builders" in _payload(statement),
        what="the statement to name the check",
    )


def _payload(statement: Path) -> str:
    return base64.b64decode(json.loads(statement.read_bytes())["payload"]).decode()


def test_a_builder_that_alters_its_wheel_is_caught(
    config: MasterConfig, master: MasterThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "piwheels")
    dishonest, honest = ScriptedSlave(config, label="dishonest"), ScriptedSlave(config, label="h")
    try:
        dishonest.publish(WHEEL, b"the built bytes, altered" * 1000)
        assert check(honest, b"the bytes the sdist builds" * 1000) == "DONE"
    finally:
        dishonest.close()
        honest.close()
    assert [verdict for _, verdict in rows(config.dsn, VERDICTS)] == ["disagreed"]
    assert "made other wheels than the published ones" in caplog.text
    wait_for(lambda: page_says(config, "disagreement: another builder made other"), what="page")
    page = config.output_path / "project" / "piwtest-pure" / "json" / "index.json"

    def shown_in_json() -> list[str]:  # written just after the HTML page
        data = json.loads(page.read_text()) if page.exists() else {"versions": []}
        return [f["cross_check"] for v in data["versions"] for f in v["files"]]

    expected = ["disagreement: another builder made other wheels"]
    wait_for(lambda: shown_in_json() == expected, what="the JSON to say so")


def test_two_real_slaves_build_the_test_sdists_identically(
    master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI, python311: Path
) -> None:
    """Reproducible builds (SOURCE_DATE_EPOCH, -g0): two real slaves, each with its own key and
    work directory, make the same bytes of a pure and of a C extension wheel."""
    projects = ["piwtest-pure", "piwtest-cext"]
    config = configure(master_dsn, tmp_path, pypi_index, ["cp311"], packages=projects)
    master = MasterThread(config).start()
    slaves = [SlaveProcess(config, python311, tmp_path) for _ in range(2)]
    try:
        # decided, whichever way: a build that failed under load says so at once
        verdicts = wait_for(lambda: decided(config), timeout=300, what="both builds checked")
        assert verdicts == ["agreed", "agreed"], rows(config.dsn, CHECKS)
    finally:
        for slave in slaves:
            slave.stop()
        master.stop()


def test_a_disagreement_is_withheld_until_the_operator_releases_it(config: MasterConfig) -> None:
    config = replace(config, withhold_disagreements=True)
    master = MasterThread(config).start()
    served = config.output_path / "simple" / "piwtest-pure"
    held = config.withheld_dir / "piwtest-pure"
    dishonest, honest = ScriptedSlave(config, label="dishonest"), ScriptedSlave(config, label="h")
    try:
        dishonest.publish(WHEEL, b"the built bytes, altered" * 1000)
        wait_for(lambda: (served / WHEEL).exists() and index_lists(config), what="published")
        assert check(honest, b"the bytes the sdist builds" * 1000) == "DONE"
        wait_for((held / WHEEL).exists, what="the wheel withheld")
        assert not (served / WHEEL).exists()
        wait_for(lambda: not index_lists(config), what="the index without it")
        wait_for(lambda: page_says(config, "withheld: disagreement"), what="the page to say so")
        # the operator looks, decides the wheel is sound, and publishes it after all
        release = [str(BIN / "piw-add"), "piwtest-pure", "1.0", "--release"]
        release += ["--import-queue", config.import_queue]
        done = subprocess.run(release, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert (served / WHEEL).exists() and not (held / WHEEL).exists()
        wait_for(lambda: index_lists(config), what="the index to list it again")
    finally:
        dishonest.close()
        honest.close()
        master.stop()


def decided(config: MasterConfig) -> list[str]:
    """Both builds' verdicts once neither is pending (none until then)."""
    verdicts = [verdict for _, verdict in rows(config.dsn, VERDICTS)]
    return verdicts if len(verdicts) == 2 and "pending" not in verdicts else []


def index_lists(config: MasterConfig) -> bool:
    index = config.output_path / "simple" / "piwtest-pure" / "index.json"
    return index.exists() and WHEEL in index.read_text()
