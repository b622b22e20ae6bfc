"""Pages of the output in a real browser: headless Chromium against piwheels.web.server.

``--dump-dom`` prints the DOM once the page's scripts have run (``--virtual-time-budget`` lets
timers and fetches finish first), so these tests see what a person sees, not just the HTML the
renderers wrote: the project page's version x ABI table, the install line that static/site.js
completes, and the results static/search.js finds. A screenshot of the project page is kept in
the test's temporary directory for a human to look at.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
from outputs import ABIS, publish

from piwheels.db.web_queries import failure_reason
from piwheels.failures import Cause
from piwheels.records.builds import BuildState
from piwheels.records.projects import AbiCell, BuildInfo, ProjectData, QueuePlace, VersionInfo
from piwheels.web import pages
from piwheels.web.server import OutputServer, serve
from pypi_index import make_wheel


class Site(NamedTuple):
    server: OutputServer
    root: Path


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; scripts/test does)")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("browser-site")
    wheels = base / "wheels"
    made = [
        # A C extension built on one ABI only (the others fail), in two versions ...
        make_wheel("piwtest-cext", "1.0", wheels, tag="cp311-cp311-linux_x86_64"),
        make_wheel("piwtest-cext", "1.1", wheels, tag="cp311-cp311-linux_x86_64"),
        # ... a pure project (built once, covering the later ABIs), and one more to search past.
        make_wheel("piwtest-pure", "1.0", wheels),
        make_wheel("piwtest-abi3", "1.0", wheels, tag="cp39-abi3-linux_x86_64"),
    ]
    root = base / "www"
    publish(root, made)
    with serve(root) as server:
        yield Site(server, root)


def browse(chromium: str, profile: Path, url: str, *extra: str) -> str:
    """Chromium's output for *url*, headless, in a profile of its own, offline from the world."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root, Chromium refuses to start with its sandbox
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            # Without these three it tries Google's servers, which this machine refuses.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *extra,
            url,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def cells(dom: str, table_class: str) -> list[list[tuple[str, str]]]:
    """The rows of the first ``<table class=table_class>``: (cell class, text) per cell."""
    found = re.search(rf'<table class="{table_class}">(.*?)</table>', dom, re.DOTALL)
    assert found, f"no table.{table_class} in the page"
    return [_cells(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(1), re.DOTALL)]


def _cells(row: str) -> list[tuple[str, str]]:
    """A table row's cells: each one's class and text."""
    return [
        (kind, html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
        for _, kind, text in re.findall(
            r'<(td|th)(?: class="([^"]*)")?[^>]*>(.*?)</\1>', row, re.DOTALL
        )
    ]


def test_project_page_shows_the_abi_table(chromium: str, site: Site, tmp_path: Path) -> None:
    url = f"{site.server.url}/project/piwtest-cext/"
    dom = browse(chromium, tmp_path / "profile", url, "--dump-dom")
    header, *body = cells(dom, "matrix")
    assert [text for _, text in header] == ["Version", "Released", *ABIS]
    versions = {row[0][1]: [kind for kind, _ in row[2:]] for row in body}
    # Built where a wheel has the ABI, failed (with a log) where none does.
    assert versions == {"1.1": ["failed", "built", "failed"], "1.0": ["failed", "built", "failed"]}
    assert re.search(r'<a href="/logs/\d{4}/\d{4}/\d+\.txt">failed</a>', dom)
    # static/site.js ran (the page's CSP allows only same-origin scripts) and filled in where
    # the page is served from.
    install = re.search(r'<span class="origin">([^<]*)</span>', dom)
    assert install and install.group(1) == site.server.url
    # A person will look at this: keep a picture beside the test's other files.
    screenshot = tmp_path / "project-page.png"
    browse(
        chromium,
        tmp_path / "profile",
        url,
        f"--screenshot={screenshot}",
        "--window-size=1280,1000",
        "--hide-scrollbars",
    )
    assert screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_covered_abis_on_a_pure_project(chromium: str, site: Site, tmp_path: Path) -> None:
    dom = browse(
        chromium, tmp_path / "profile", f"{site.server.url}/project/piwtest-pure/", "--dump-dom"
    )
    _, row = cells(dom, "matrix")
    assert [kind for kind, _ in row[2:]] == ["built", "covered", "covered"]


def test_search_finds_a_project(chromium: str, site: Site, tmp_path: Path) -> None:
    url = f"{site.server.url}/search/?q=PiwTest_CExt"
    dom = browse(chromium, tmp_path / "profile", url, "--dump-dom")
    results = re.search(r'<ol id="results">(.*?)</ol>', dom, re.DOTALL)
    assert results, dom
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', results.group(1))
    # search.js normalises the query as PEP 503 does, so the odd spelling finds the project.
    assert links == [("/project/piwtest-cext/", "piwtest-cext")]
    assert "1 found" in dom
    # It fetched the search index through the server like any other file.
    assert site.server.wait_idle()
    assert any(entry.path == "/packages.json" for entry in site.server.requests)


def test_search_by_summary_words(chromium: str, site: Site, tmp_path: Path) -> None:
    url = f"{site.server.url}/search/?q=published+as+a+wheel"
    dom = browse(chromium, tmp_path / "profile", url, "--dump-dom")
    found = re.findall(r'<a href="/project/([^/"]+)/">', dom.split('id="results"', 1)[1])
    assert sorted(found) == ["piwtest-abi3", "piwtest-cext", "piwtest-pure"]


def test_a_page_says_where_each_version_stands(chromium: str, site: Site, tmp_path: Path) -> None:
    """#14 and #15 as a person sees them: a queued version's tier and place, a release time PyPI
    does not know, and a failed build's state and what it needs (its summary on hover)."""
    as_of = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    summary = 'missing header portaudio.h: "fatal error: portaudio.h: No such file or directory"'
    waiting = BuildInfo(
        7,
        "cp311",
        False,
        as_of,
        timedelta(seconds=9),
        1,
        cause="missing-header",
        summary=summary,
        needs=("portaudio19-dev",),
        outcome="dep-wait",
    )
    versions = [
        VersionInfo(
            "2.0",
            as_of,
            False,
            "",
            {
                "cp311": AbiCell(
                    BuildState.PENDING,
                    "queued (newest release): 12 ahead",
                    None,
                    QueuePlace(1, 1, 12, 12, as_of),
                )
            },
            [],
            [],
        ),
        VersionInfo(
            "1.0",
            as_of,
            False,
            "",
            {"cp311": AbiCell(BuildState.DEP_WAIT, failure_reason(waiting), 7)},
            [waiting],
            [],
        ),
        VersionInfo("0.1", None, False, "binary only: no sdist on PyPI", {}, [], []),
    ]
    project = ProjectData("piwtest-states", "piwtest-states", "", "", ["cp311"], versions)
    page = site.root / "project" / "piwtest-states" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(pages.project_page(project, apt_dependencies=()))
    dom = browse(
        chromium, tmp_path / "profile", f"{site.server.url}/project/piwtest-states/", "--dump-dom"
    )
    _, *rows = cells(dom, "matrix")
    shown = {row[0][1]: row[1:] for row in rows}
    assert shown["2.0"][1] == ("pending", "pendingqueued (newest release): 12 ahead")
    assert shown["1.0"][1] == ("dep-wait", "dep-waitneeds portaudio19-dev on the cp311 builders")
    assert shown["0.1"][0] == ("", "unknown")
    assert f'title="{html.escape(summary)}"' in dom


def test_the_faq_lists_every_cause_and_state(chromium: str, site: Site, tmp_path: Path) -> None:
    dom = browse(chromium, tmp_path / "profile", f"{site.server.url}/faq/", "--dump-dom")
    _, *causes = cells(dom, "causes")
    assert [row[0][1] for row in causes] == [str(cause) for cause in Cause]
    _, *states = cells(dom, "states")
    assert [row[0] for row in states] == [(str(state), str(state)) for state in BuildState]
    # static/site.js filled the site's origin into every install line
    origins = re.findall(r'<span class="origin">([^<]*)</span>', dom)
    assert len(origins) >= 5
    assert set(origins) == {site.server.url}
    assert '<a href="/faq/">FAQ</a>' in dom
