"""The web output of a running master: a build recorded lands in the index and on the pages
(the Secretary's own tests are in test_the_secretary.py, the Scribe's in test_the_scribe.py)."""

from __future__ import annotations

import html
import json
import re
import zipfile
from pathlib import Path

import pytest

from farm import MasterThread, ScriptedSlave, build_result, configure, file_state, rows, wait_for
from master.page_requests import ask_for_pages
from piwheels.master_support.config import MasterConfig
from piwheels.web.layout import log_path
from pypi_index import LocalPyPI, make_wheel


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39"], packages=["piwtest-pure"])


def test_a_recorded_build_lands_in_the_index_and_pages(
    config: MasterConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels")
    content = wheel.read_bytes()
    # only a project's first wheel can bring the search index up to date in time (#14)
    config.search_interval = 3600.0
    config.contact = "wheels@example.org"  # the FAQ's way to the operator (--contact)
    master = MasterThread(config).start()
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.hello()
        assert slave.wait_for_build() == ("piwtest-pure", "1.0")
        state = file_state(wheel.name, content)
        assert slave.request("BUILT", build_result(state)) == ("SEND", wheel.name)
        slave.send_file(content)
        assert slave.request("SENT")[0] == "DONE"
        out = config.output_path
        page = out / "simple" / "piwtest-pure" / "index.json"
        wait_for(lambda: page.exists() and wheel.name in page.read_text(), what="the index page")
        # The root is rewritten at most every took/ROOT_DUTY seconds; on a loaded machine its
        # first run (at start, interpreter start-up included) took 4-8 s, so up to 80 s.
        wait_for(
            lambda: (
                (out / "simple" / "index.json").exists()
                and "piwtest-pure" in (out / "simple" / "index.json").read_text()
            ),
            timeout=120,
            what="the index root",
        )
        wait_for((out / "index.html").exists, what="the home page")
        # written at the start: the FAQ, the 404 page and the sitemap (in a child, at once)
        assert '<a href="mailto:wheels@example.org">' in (out / "faq" / "index.html").read_text()
        assert (out / "404.html").exists()
        wait_for(
            lambda: (
                (out / "sitemap.xml").exists()
                and f"{config.public_url}/faq/" in (out / "sitemap.xml").read_text()
            ),
            what="the sitemap",
        )
        wait_for(
            lambda: (
                (out / "packages.json").exists()
                and "piwtest-pure" in (out / "packages.json").read_text()
            ),
            timeout=120,  # within SEARCH_GAP of the run at start, and its duty
            what="the search index",
        )
        index = json.loads(page.read_text())
        # a wheel lost from the disk: one line for its project, naming it
        lost = out / "simple" / "piwtest-pure" / wheel.name
        lost.rename(tmp_path / "lost.whl")
        lost.with_name(wheel.name + ".metadata").rename(tmp_path / "lost.metadata")
        ask_for_pages(master, ("PROJECT", "piwtest-pure"))

        def missing() -> list[str]:
            return [r.getMessage() for r in caplog.records if "missing from" in r.getMessage()]

        wait_for(missing, what="the Scribe to notice the lost wheel")
        assert len(missing()) == 1
        assert missing()[0].startswith("1 of piwtest-pure's files are recorded but missing")
        assert wheel.name in missing()[0]
        (tmp_path / "lost.whl").rename(lost)
        (tmp_path / "lost.metadata").rename(lost.with_name(wheel.name + ".metadata"))
    finally:
        slave.close()
        master.stop()
    [entry] = [f for f in index["files"] if f["filename"] == wheel.name]
    assert entry["hashes"] == {"sha256": state.filehash}
    metadata = out / "simple" / "piwtest-pure" / (wheel.name + ".metadata")
    with zipfile.ZipFile(wheel) as zf:
        assert metadata.read_bytes() == zf.read("piwtest_pure-1.0.dist-info/METADATA")
    [build_id] = [r[0] for r in rows(config.dsn, "SELECT build_id FROM builds")]
    assert (out / log_path(build_id)).exists()
    project_page = (out / "project" / "piwtest-pure" / "index.html").read_text()
    assert "piwtest-pure" in project_page
    assert "<script>alert" not in project_page
    # an install line one can paste, at the farm's public URL (#14)
    install = f"pip install --index-url {config.public_url}/simple/ piwtest-pure"
    assert install in html.unescape(re.sub("<[^>]+>", "", project_page))
    data = json.loads((out / "project" / "piwtest-pure" / "json" / "index.json").read_text())
    assert data["index_url"] == f"{config.public_url}/simple/piwtest-pure/"
    home = html.unescape(re.sub("<[^>]+>", "", (out / "index.html").read_text()))
    assert f"pip install --index-url {config.public_url}/simple/ NAME" in home
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob("*.part"))
