"""piw-import, piw-remove, piw-rebuild and piw-add as an operator runs them, against a real master.

The master runs in a thread on a real database, following the test's local index for one
project; each tool runs as its installed console script (stdin not a terminal, as in cron), so
what is checked is what an operator sees: the exit status, the message, and the farm's state
afterwards (the database's queue and the web output).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from farm import MasterThread, configure, rows, wait_for
from piwheels.master.the_scribe import TheScribe
from piwheels.master.the_secretary import TheSecretary
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI, make_wheel

BIN = Path(sys.executable).parent
QUEUE = "SELECT v.version, q.abi_tag FROM build_queue q JOIN versions v USING (version_id)"


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"], packages=["piwtest-pure"])


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    wait_for(lambda: ("1.0", "cp39") in rows(config.dsn, QUEUE), what="the catalogue")
    yield running
    running.stop()


def piw(config: MasterConfig, tool: str, *argv: object) -> subprocess.CompletedProcess[str]:
    command = [BIN / f"piw-{tool}", *map(str, argv), "--import-queue", config.import_queue]
    if tool == "import":
        command += ["--file-queue", config.file_queue, "--key-dir", str(config.key_dir)]
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess[str], status: int, message: str) -> None:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert message in result.stderr


def test_import_publishes_wheels_and_refuses_bad_ones(
    config: MasterConfig, master: MasterThread, tmp_path: Path
) -> None:
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels", requires_python=">=3.8")
    content = wheel.read_bytes()
    assert ok(piw(config, "import", wheel, "--delete")) == "imported piwtest-pure 1.0 (1 file)\n"
    assert not wheel.exists()

    published = config.output_path / "simple" / "piwtest-pure" / wheel.name
    assert published.read_bytes() == content
    assert rows(config.dsn, "SELECT abi_tag, built_by, status FROM builds") == [("cp39", 0, True)]
    assert ("1.0", "cp39") not in rows(config.dsn, QUEUE)  # a none wheel serves every ABI
    index = config.output_path / "simple" / "piwtest-pure" / "index.json"
    wait_for(lambda: index.exists() and wheel.name in index.read_text(), what="the index")
    page = config.output_path / "project" / "piwtest-pure" / "index.html"
    wait_for(lambda: page.exists() and wheel.name in page.read_text(), what="the project page")

    # A version the master does not know is refused until piw-add records it.
    new = make_wheel("piwtest-pure", "9.9", tmp_path / "wheels")
    failed(piw(config, "import", new, "--delete"), 1, "no such version: piwtest-pure 9.9")
    assert new.exists()
    assert ok(piw(config, "add", "piwtest-pure", "9.9")) == "added piwtest-pure 9.9\n"
    failed(
        piw(config, "import", new, "--abi", "cp27mu"), 1, "cp27mu is not one of this farm's ABIs"
    )
    assert ok(piw(config, "import", new, "--abi", "cp311")).startswith("imported piwtest-pure 9.9")
    assert ("cp311", True) in rows(
        config.dsn,
        "SELECT abi_tag, status FROM builds JOIN versions USING (version_id) WHERE version = '9.9'",
    )

    # Bad wheels never reach the master.
    junk = tmp_path / "piwtest_pure-1.0-py3-none-any.whl"
    junk.write_bytes(b"not a zip")
    failed(piw(config, "import", junk), 2, f"{junk}: corrupt zip")
    misnamed = tmp_path / "nope.whl"
    misnamed.write_bytes(content)
    failed(piw(config, "import", misnamed), 2, f"{misnamed}: not a wheel filename")


def pages_quiet(master: MasterThread) -> bool:
    """Whether no page request waits in the Secretary or the Scribe."""
    for task in master.master.tasks:
        if isinstance(task, TheSecretary) and task.held:
            return False
        if isinstance(task, TheScribe) and (task.in_flight or task.retries):
            return False
    return True


def test_remove_and_rebuild(config: MasterConfig, master: MasterThread, tmp_path: Path) -> None:
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels")
    ok(piw(config, "import", wheel))
    published = config.output_path / "simple" / "piwtest-pure" / wheel.name
    assert published.exists()

    # Pages that vanished come back when asked for, and only the ones asked for (an index
    # page is only written for a project with published files).
    index = config.output_path / "simple" / "piwtest-pure" / "index.html"
    page = config.output_path / "project" / "piwtest-pure" / "index.html"
    wait_for(lambda: index.exists() and page.exists(), what="the pages")
    # Cloud Gazer's request for them (it recorded the project) may still be on its way: a
    # request for both pages held then would take in the one for the project page below
    wait_for(lambda: pages_quiet(master), what="every page request written")
    index.unlink()
    page.unlink()
    assert ok(piw(config, "rebuild", "project", "piwtest-pure")) == (
        "rebuilding project pages of piwtest-pure\n"
    )
    wait_for(page.exists, what="the project page")
    assert not index.exists()
    ok(piw(config, "rebuild", "both"))
    wait_for(index.exists, what="the index page")
    for part in ("home", "search"):
        ok(piw(config, "rebuild", part))
    # the pages of the whole site, otherwise written only when the master starts
    site = [config.output_path / name for name in ("faq/index.html", "404.html", "sitemap.xml")]
    wait_for(lambda: all(path.exists() for path in site), what="the site's pages")
    for path in site:
        path.unlink()
    assert ok(piw(config, "rebuild", "site")) == "rebuilding site\n"
    wait_for(lambda: all(path.exists() for path in site), what="the site's pages again")
    failed(piw(config, "rebuild", "site", "piwtest-pure"), 2, "site takes no PACKAGE")

    # Not from a terminal and no --yes: refused, nothing changes.
    failed(piw(config, "remove", "piwtest-pure", "1.0"), 2, "without --yes")
    assert published.exists()
    # Without a reason, the wheel goes and the version is queued again from the lowest ABI.
    assert ok(piw(config, "remove", "piwtest-pure", "1.0", "--yes")) == "removed piwtest-pure 1.0\n"
    assert not published.exists()
    assert ("1.0", "cp39") in rows(config.dsn, QUEUE)
    # With one, it is never built again.
    ok(piw(config, "remove", "PiwTest_Pure", "1.0", "--yes", "--skip", "breaks the builders"))
    assert "1.0" not in [version for version, _ in rows(config.dsn, QUEUE)]
    assert rows(config.dsn, "SELECT skip FROM versions WHERE version = '1.0'") == [
        ("breaks the builders",)
    ]
    wait_for(lambda: "breaks the builders" in page.read_text(), what="the reason on the page")
    failed(piw(config, "remove", "piwtest-pure", "7.0", "-y"), 1, "no such version")

    failed(piw(config, "rebuild", "both", "nope"), 1, "no such package: nope")
    failed(piw(config, "rebuild", "home", "piwtest-pure"), 2, "home takes no PACKAGE")

    # Once the master is gone, its socket is too: the tools say so at once.
    master.stop()
    failed(piw(config, "rebuild", "home"), 3, f"no master at {config.import_queue}")


def test_add_skip_yank_retry(config: MasterConfig, master: MasterThread) -> None:
    def queued() -> list[str]:
        return [version for version, abi in rows(config.dsn, QUEUE) if abi == "cp39"]

    assert ok(piw(config, "add", "piwtest-pure", "3.0")) == "added piwtest-pure 3.0\n"
    assert "3.0" in queued()
    ok(piw(config, "add", "piwtest-pure", "3.0", "--skip", "not on PyPI"))
    assert "3.0" not in queued()
    ok(piw(config, "add", "piwtest-pure", "3.0", "--unskip"))
    assert "3.0" in queued()
    ok(piw(config, "add", "piwtest-pure", "3.0", "--yank"))
    assert "3.0" not in queued()
    assert rows(config.dsn, "SELECT yanked FROM versions WHERE version = '3.0'") == [(True,)]
    ok(piw(config, "add", "piwtest-pure", "3.0", "--unyank"))
    assert "3.0" in queued()
    ok(piw(config, "add", "piwtest-pure", "4.0", "--new", "--skip", "needs CUDA"))
    assert rows(config.dsn, "SELECT skip FROM versions WHERE version = '4.0'") == [("needs CUDA",)]
    assert "4.0" not in queued()

    failed(piw(config, "add", "piwtest-pure", "3.0", "--retry"), 2, "without --yes")
    failed(
        piw(config, "add", "piwtest-pure", "3.0", "--retry", "--yes"),
        1,
        "no failed build of piwtest-pure 3.0 to retry",
    )
    failed(piw(config, "add", "nope", "--skip", "x"), 1, "no such package: nope")
    failed(piw(config, "add", "piwtest-pure", "--yank"), 2, "--yank needs a VERSION")
