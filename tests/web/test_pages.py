"""piwheels.web.pages: project pages (HTML and JSON), home, search, logs and the static files.

Pages are parsed back with html.parser: the checks are on what a browser would see (text,
attributes, which elements exist), not on template internals.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

import piwheels.web
from piwheels.records.builds import BuildState
from piwheels.records.projects import (
    AbiCell,
    BuildInfo,
    ProjectData,
    QueuePlace,
    SearchEntry,
    Statistics,
    VersionInfo,
    WheelFile,
)
from piwheels.web import pages

WEB = Path(piwheels.web.__file__).parent
WHEN = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
ABIS = ["cp39", "cp311", "cp313"]


class Page(HTMLParser):
    """What a browser would see: elements, attribute values and the text (all unescaped)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.chunks: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]

    @property
    def hrefs(self) -> list[str]:
        return [str(attrs["href"]) for attrs in self.all("a")]


def wheel(filename: str, abi: str, *, size: int = 123_456, yanked: str | None = None) -> WheelFile:
    return WheelFile(
        filename=filename,
        filesize=size,
        filehash=f"{size:064x}",
        requires_python=">=3.9",
        uploaded=WHEN,
        yanked=yanked,
        metadata_hash="c" * 64,
        abi_tag=abi,
        apt_dependencies=("libfoo1",),
    )


def build(build_id: int, abi: str, status: bool) -> BuildInfo:
    failed = {} if status else {"cause": "unknown", "outcome": "failed"}
    return BuildInfo(build_id, abi, status, WHEN, timedelta(minutes=2, seconds=5), 7, **failed)


@pytest.fixture
def project() -> ProjectData:
    """Every state a cell can be in, a retried build, a skipped and a yanked version."""
    v2 = VersionInfo(
        version="2.0",
        released=WHEN,
        yanked=False,
        skip="",
        cells={
            "cp39": AbiCell(BuildState.BUILT, "", 3),
            "cp311": AbiCell(BuildState.FAILED, "", 4),
            "cp313": AbiCell(BuildState.BUILDING, "", None),
        },
        # Build 1 failed on cp39 and was retried as build 3: both logs must be reachable.
        builds=[build(1, "cp39", False), build(3, "cp39", True), build(4, "cp311", False)],
        files=[wheel("foo_bar-2.0-cp39-cp39-linux_armv7l.whl", "cp39", size=2_345_678)],
    )
    v1 = VersionInfo(
        version="1.0",
        released=WHEN - timedelta(days=30),
        yanked=True,
        skip="",
        cells={
            "cp39": AbiCell(BuildState.BUILT, "", 2),
            "cp311": AbiCell(BuildState.COVERED, "served by the cp39 build", 2),
            "cp313": AbiCell(BuildState.SKIPPED, "needs Python < 3.13", None),
        },
        builds=[build(2, "cp39", True)],
        files=[wheel("foo_bar-1.0-cp39-abi3-linux_armv7l.whl", "abi3")],
    )
    v0 = VersionInfo(
        version="0.1",
        released=WHEN - timedelta(days=60),
        yanked=False,
        skip="binary only: no source release",
        cells={abi: AbiCell(BuildState.SKIPPED, "", None) for abi in ABIS},
        builds=[],
        files=[],
    )
    v3 = VersionInfo("3.0a1", WHEN, False, "", {}, [], [])  # seen before the ABIs were
    return ProjectData(
        name="foo-bar",
        display_name="Foo.Bar",
        summary="Bars for foos",
        description="Line one\n\n* a list",
        abis=ABIS,
        versions=[v3, v2, v1, v0],
    )


def hostile_project() -> ProjectData:
    evil_file = wheel(f"foo_bar_baz-1.0{SCRIPT}-py3-none-any.whl", f"{SCRIPT}", yanked=SCRIPT)
    version = VersionInfo(
        version=f"1.0{SCRIPT}",
        released=WHEN,
        yanked=True,
        skip="",
        cells={"cp39": AbiCell(BuildState.SKIPPED, f'"{SCRIPT}', 9)},
        builds=[build(9, f'"{SCRIPT}', False), build(10, "cp39", False)],
        files=[evil_file],
    )
    skipped = VersionInfo("0.9", WHEN, False, SCRIPT, {}, [build(11, "cp39", False)], [])
    return ProjectData(
        name="Foo.Bar_baz",
        display_name=SCRIPT,
        summary=SCRIPT,
        description=f"{SCRIPT}\n<img src=x onerror=alert(1)>\n# Markdown *is* not rendered",
        abis=["cp39"],
        versions=[version, skipped],
    )


def rows(page: str) -> dict[str, list[str]]:
    """The version table as {version: [cell text, ...]}."""
    table = page[page.index('<table class="matrix">') : page.index("</table>")]
    result = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL)[1:]:
        cells = [Page(cell).text for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        result[cells[0].removesuffix(" yanked")] = cells[2:]
    return result


# -- the project page -----------------------------------------------------------------------


def test_project_page_shows_every_version_and_abi(project: ProjectData) -> None:
    html = pages.project_page(project, apt_dependencies=["libfoo1", "libbar2"])
    page = Page(html)
    assert "Foo.Bar" in page.text
    assert "Bars for foos" in page.text
    headers = re.search(r"<thead><tr>(.*?)</tr></thead>", html)
    assert headers is not None
    assert Page(headers.group(1)).text == "VersionReleasedcp39cp311cp313"
    table = rows(html)
    assert table["3.0a1"] == ["pending", "pending", "pending"]
    assert table["2.0"] == ["built #1", "failed", "building"]
    assert table["1.0"] == [
        "built",
        "coveredserved by the cp39 build",
        "skippedneeds Python < 3.13",
    ]
    assert table["0.1"] == ["skipped: binary only: no source release"]
    assert "2026-11-01 12:30" in page.text


def test_project_page_lists_libraries_no_debian_package_owned(project: ProjectData) -> None:
    libraries = ["/usr/lib/x86_64-linux-gnu/libfoo.so.1", "/opt/<b>evil</b>.so"]
    html = pages.project_page(project, apt_dependencies=[], unowned_libraries=libraries)
    text = Page(html).text
    assert "no Debian package provided" in text
    assert libraries[0] in text
    assert "<b>evil</b>" not in html  # escaped, as everything from a slave is
    assert "no Debian package" not in pages.project_page(project, apt_dependencies=[])


def test_project_page_marks_yanked_versions(project: ProjectData) -> None:
    html = pages.project_page(project, apt_dependencies=[])
    assert re.search(
        r'<tr id="v-1.0" class="yanked"><th><a href="#files-1.0">1.0</a> <span class="badge">',
        html,
    )
    files = html[html.index('<h3 id="files-1.0">') :]
    assert "yanked" in Page(files[: files.index("</table>")]).text


def test_project_page_gives_pypis_reason_for_a_yank(project: ProjectData) -> None:
    one = next(v for v in project.versions if v.version == "1.0")
    said = one._replace(files=[f._replace(yanked="bad <b>build</b>") for f in one.files])
    versions = [said if v is one else v for v in project.versions]
    html = pages.project_page(project._replace(versions=versions), apt_dependencies=[])
    assert "Yanked on PyPI: bad <b>build</b>" in Page(html).text
    assert "<b>build" not in html  # escaped
    assert "Yanked on PyPI" not in pages.project_page(project, apt_dependencies=[])


def test_every_link_within_the_page_has_its_target(project: ProjectData) -> None:
    """#14: the version links pointed at no element when a version had no files."""
    page = Page(pages.project_page(project, apt_dependencies=[]))
    ids = {attrs["id"] for _, attrs in page.elements if attrs.get("id")}
    fragments = [unquote(href[1:]) for href in page.hrefs if href.startswith("#")]
    assert fragments, "the page links its versions' files"
    assert not [f for f in fragments if f not in {unquote(str(i)) for i in ids}]
    rows = {unquote(str(attrs["id"])) for attrs in page.all("tr") if attrs.get("id")}
    assert rows == {f"v-{version.version}" for version in project.versions}


def test_project_page_links_every_build_log_and_file(project: ProjectData) -> None:
    page = Page(pages.project_page(project, apt_dependencies=[]))
    for build_id in (1, 2, 3, 4):
        assert f"/logs/0000/0000/{build_id}.txt" in page.hrefs
    assert "/simple/foo-bar/foo_bar-2.0-cp39-cp39-linux_armv7l.whl" in page.hrefs
    assert "/simple/foo-bar/foo_bar-1.0-cp39-abi3-linux_armv7l.whl" in page.hrefs
    assert f"{2_345_678:064x}" in page.text  # the SHA256
    assert "2.3 MB" in page.text
    sizes = [attrs.get("title") for attrs in page.all("td") if attrs.get("title")]
    assert "2345678 bytes" in sizes


def test_project_page_install_lines(project: ProjectData) -> None:
    html = pages.project_page(
        project, apt_dependencies=["libfoo1"], base_url="https://wheels.example/"
    )
    text = Page(html).text
    assert "pip install --index-url https://wheels.example/simple/ foo-bar" in text
    assert "sudo apt install libfoo1" in text
    # Without a base URL the origin is filled in by the site's own script.
    html = pages.project_page(project, apt_dependencies=[])
    assert '<span class="origin"></span>/simple/ foo-bar' in html
    assert "apt install" not in html
    assert {"src": "/static/site.js", "defer": None} in Page(html).all("script")


def test_links_are_root_relative(project: ProjectData) -> None:
    page = Page(pages.project_page(project, apt_dependencies=[]))
    for attrs in page.all("a") + page.all("link") + page.all("script"):
        url = str(attrs.get("href") or attrs.get("src"))
        assert url.startswith(("/", "#")), url
        assert not url.startswith("//"), url


def test_hostile_project_page_escapes_everything() -> None:
    hostile = hostile_project()
    html = pages.project_page(hostile, apt_dependencies=[SCRIPT], base_url=f'https://x/"{SCRIPT}')
    page = Page(html)
    # The only scripts are our own files; no element came from the data.
    assert [attrs["src"] for attrs in page.all("script")] == ["/static/site.js"]
    assert page.all("img") == []
    assert "<script>" not in html.replace('<script src="/static/site.js" defer></script>', "")
    # ... and the data is shown as text, not dropped.
    assert page.text.count(SCRIPT) >= 6
    assert "<img src=x onerror=alert(1)>\n# Markdown *is* not rendered" in page.text
    # The name is normalized wherever it is part of a URL.
    assert "pip install" in page.text
    assert " foo-bar-baz" in page.text
    assert "/project/foo-bar-baz/json/index.json" in page.hrefs
    for href in page.hrefs:
        assert "<" not in href
        assert '"' not in href


def test_hostile_project_json_keeps_values_as_strings() -> None:
    data = json.loads(pages.project_json(hostile_project(), [SCRIPT]))
    assert data["name"] == "foo-bar-baz"
    assert data["summary"] == data["display_name"] == SCRIPT
    assert data["apt_dependencies"] == [SCRIPT]
    file = data["versions"][0]["files"][0]
    assert file["filename"].endswith(f"{SCRIPT}-py3-none-any.whl")
    assert file["url"].startswith("/simple/foo-bar-baz/")
    assert "<" not in file["url"]
    assert "/" not in file["url"].removeprefix("/simple/foo-bar-baz/")


def test_long_descriptions_are_cut(project: ProjectData) -> None:
    long = project._replace(description="x" * (pages.MAX_DESCRIPTION + 5000))
    page = Page(pages.project_page(long, apt_dependencies=[]))
    assert "x" * pages.MAX_DESCRIPTION in page.text
    assert "x" * (pages.MAX_DESCRIPTION + 1) not in page.text
    assert "longer than this page shows" in page.text
    data = json.loads(pages.project_json(long))
    assert data["description_truncated"] is True
    assert len(data["description"]) == pages.MAX_DESCRIPTION


def test_pypis_status_and_why_a_wheel_is_withheld_are_shown(project: ProjectData) -> None:
    v3, v2, *older = project.versions
    held = v2.files[0]._replace(withheld=True, withheld_for=("removed", "quarantined"))
    marked = project._replace(
        status="quarantined",
        status_reason=SCRIPT,
        versions=[v3, v2._replace(files=[held]), *older],
    )
    html = pages.project_page(marked, apt_dependencies=[])
    page = Page(html)
    assert f"Quarantined on PyPI as unsafe: its wheels are not served ({SCRIPT})." in page.text
    assert "<script>" not in html.replace('<script src="/static/site.js" defer></script>', "")
    assert f"{held.filename} withheld: removed from PyPI; quarantined on PyPI" in page.text
    assert not any(href.endswith(held.filename) for href in page.hrefs)
    assert "project-status" not in pages.project_page(project, apt_dependencies=[])

    data = json.loads(pages.project_json(marked))
    assert data["project_status"] == {"status": "quarantined", "reason": SCRIPT}
    file = data["versions"][1]["files"][0]
    assert (file["url"], file["withheld"], file["withheld_for"]) == (
        None,
        True,
        ["removed", "quarantined"],
    )


# -- the project JSON -----------------------------------------------------------------------


def test_project_json_shape(project: ProjectData) -> None:
    data = json.loads(pages.project_json(project, ["libfoo1"]))
    assert data["meta"] == {"version": pages.PROJECT_JSON_VERSION}
    assert data["name"] == "foo-bar"
    assert data["abis"] == ABIS
    assert data["apt_dependencies"] == ["libfoo1"]
    assert data["index_url"] == "/simple/foo-bar/"
    assert [v["version"] for v in data["versions"]] == ["3.0a1", "2.0", "1.0", "0.1"]
    v2 = data["versions"][1]
    assert v2["released"] == "2026-11-01T12:30:00Z"
    assert v2["abis"]["cp39"] == {
        "state": "built",
        "reason": None,
        "build_id": 3,
        "log_url": "/logs/0000/0000/3.txt",
        "queue": None,
        "cause": None,
        "summary": None,
        "needs": [],
    }
    assert v2["abis"]["cp313"]["state"] == "building"
    assert v2["builds"][0] == {
        "build_id": 1,
        "abi": "cp39",
        "status": "failed",
        "built_at": "2026-11-01T12:30:00Z",
        "duration": 125.0,
        "built_by": 7,
        "log_url": "/logs/0000/0000/1.txt",
        "outcome": "failed",
        "cause": "unknown",
        "summary": None,
        "needs": [],
        "retry_at": None,
        "requeued": False,
    }
    assert v2["files"][0] == {
        "filename": "foo_bar-2.0-cp39-cp39-linux_armv7l.whl",
        "url": "/simple/foo-bar/foo_bar-2.0-cp39-cp39-linux_armv7l.whl",
        "size": 2_345_678,
        "sha256": f"{2_345_678:064x}",
        "abi": "cp39",
        "requires_python": ">=3.9",
        "uploaded": "2026-11-01T12:30:00Z",
        "yanked": None,
        "metadata_sha256": "c" * 64,
        "apt_dependencies": ["libfoo1"],
        "unowned_libraries": [],
        "provenance_url": None,  # no statement beside it (see test_project_links_provenance)
        "cross_check": "not checked",
        "withheld": False,
        "withheld_for": [],
    }
    assert data["project_status"] == {"status": "active", "reason": None}
    v1 = data["versions"][2]
    assert v1["yanked"] is True
    assert v1["files"][0]["yanked"] == ""  # a yanked version yanks its files
    assert v1["abis"]["cp311"]["reason"] == "served by the cp39 build"
    assert data["versions"][3]["skip"] == "binary only: no source release"
    assert data["versions"][0]["abis"] == {
        abi: {
            "state": "pending",
            "reason": None,
            "build_id": None,
            "log_url": None,
            "queue": None,
            "cause": None,
            "summary": None,
            "needs": [],
        }
        for abi in ABIS
    }


def queued_project() -> ProjectData:
    """A newest release queued on cp39, a backlog version whose place is a range, and an
    old version PyPI has no file (so no upload time) of."""
    as_of = WHEN + timedelta(minutes=5)
    newest = VersionInfo(
        "2.0",
        WHEN,
        False,
        "",
        {
            "cp39": AbiCell(
                BuildState.PENDING,
                "queued (newest release): 12 ahead",
                None,
                QueuePlace(1, 1, 12, 12, as_of),
            )
        },
        [],
        [],
    )
    backlog = VersionInfo(
        "1.0",
        WHEN - timedelta(days=30),
        False,
        "",
        {
            "cp39": AbiCell(
                BuildState.PENDING,
                "queued (backlog): 1,500 to 9,000 ahead",
                None,
                QueuePlace(2, 2, 1500, 9000, as_of),
            )
        },
        [],
        [],
    )
    unknown = VersionInfo("0.1", None, False, "binary only: no sdist on PyPI", {}, [], [])
    return ProjectData("foo", "foo", "", "", ["cp39"], [newest, backlog, unknown])


def test_queued_versions_say_where_they_stand() -> None:
    project = queued_project()
    data = json.loads(pages.project_json(project))
    newest, backlog, _ = data["versions"]
    assert newest["abis"]["cp39"]["queue"] == {
        "tier": "newest",
        "rank": 1,
        "ahead": 12,
        "ahead_at_most": 12,
        "as_of": "2026-11-01T12:35:00Z",
    }
    assert backlog["abis"]["cp39"]["queue"]["tier"] == "backlog"
    assert backlog["abis"]["cp39"]["queue"]["ahead_at_most"] == 9000
    assert backlog["abis"]["cp39"]["reason"] == "queued (backlog): 1,500 to 9,000 ahead"
    html = pages.project_page(project, apt_dependencies=[])
    table = rows(html)
    assert table["2.0"] == ["pendingqueued (newest release): 12 ahead"]
    assert 'title="queued (newest release): 12 ahead at 2026-11-01 12:35 UTC"' in html


def test_unknown_release_times_are_shown_as_such() -> None:
    project = queued_project()
    data = json.loads(pages.project_json(project))
    assert data["versions"][2]["released"] is None
    html = pages.project_page(project, apt_dependencies=[])
    row = re.search(r'<tr id="v-0.1">(.*?)</tr>', html)
    assert row is not None
    assert Page(row.group(1)).text.startswith("0.1unknown")


def test_page_and_json_agree(project: ProjectData) -> None:
    page = Page(pages.project_page(project, apt_dependencies=[]))
    data = json.loads(pages.project_json(project))
    for version in data["versions"]:
        for file in version["files"]:
            assert file["url"] in page.hrefs
            assert file["sha256"] in page.text
        for item in version["builds"]:
            assert item["log_url"] in page.hrefs


# -- home, search, logs ---------------------------------------------------------------------


def test_home_page() -> None:
    stats = Statistics(
        packages=12_345,
        versions=67_890,
        builds=1_000,
        builds_succeeded=900,
        builds_last_hour=42,
        failures_last_hour=3,
        files=5_000,
        bytes=7_500_000_000,
        queue={"cp39": 17, "cp311": 4, "cp313": 0},
        queue_priority={"cp39": 2, "cp311": 0, "cp313": 0},
        queue_newest={"cp39": 5, "cp311": 3, "cp313": 0},
        failures_by_cause={"cp39": {"missing-header": 4, "unknown": 1}},
        disk_free=250_000_000_000,
        disk_total=1_000_000_000_000,
        updated=WHEN,
        given_back_last_hour=2,
    )
    recent = [pages.RecentBuild("foo-bar", f"1.0{SCRIPT}", "cp311", False, WHEN)]
    html = pages.home_page(stats, recent)
    page = Page(html)
    text = " ".join(page.text.split())
    for figure in (
        "12,345",
        "67,890",
        "1,000 (900 succeeded)",
        "42 (3 failed, 2 to be tried again)",
        "5,000 (7.5 GB)",
    ):
        assert figure in text
    assert "250.0 GB of 1.0 TB (75% used)" in text
    # The queue in the farm's ABI order, as given: put first, newest releases, backlog, all.
    assert re.search(
        r"cp39\s*2\s*5\s*10\s*17\s*cp311\s*0\s*3\s*1\s*4\s*cp313\s*0\s*0\s*0\s*0", page.text
    )
    assert "/project/foo-bar/" in page.hrefs
    assert f"1.0{SCRIPT}" in page.text
    assert "<script>alert" not in html
    assert "2026-11-01 12:30" in text
    assert pages.home_page(stats._replace(disk_total=0))  # a broken disk figure is no crash


def test_search_page_uses_only_its_script() -> None:
    page = Page(pages.search_page())
    assert [attrs["src"] for attrs in page.all("script")] == ["/static/search.js"]
    assert any(attrs.get("id") == "query" for attrs in page.all("input"))


def test_search_index() -> None:
    entries = [
        SearchEntry("foo-bar", SCRIPT, 3, 4),
        SearchEntry("caf", "caf\u00e9 \u2615" + "x" * 1000, 1, 0),
    ]
    body = pages.search_index(iter(entries))
    data = json.loads(body.decode("utf-8"))
    assert data[0] == ["foo-bar", SCRIPT, 3, 4]
    assert data[1][1].startswith("caf\u00e9 \u2615")
    assert len(data[1][1]) == pages.MAX_SEARCH_SUMMARY
    assert "\u2615".encode() in body  # UTF-8, not \\u escapes
    assert pages.search_index([]) == b"[]"


def test_build_log_is_plain_text() -> None:
    # Served as text/plain: markup stays as the build printed it, never interpreted.
    text = f"running setup.py\n{SCRIPT}\nerror: failed\n"
    assert pages.build_log(text) == text
    assert pages.build_log("a\0b") == "a\ufffdb"


def test_build_log_keeps_both_ends_of_an_absurd_log() -> None:
    head = "building foo 1.0 for cp311\n"
    tail = "error: command 'gcc' failed\n"
    text = head + "noise\n" * 500_000 + tail
    log = pages.build_log(text)
    assert len(log) < pages.MAX_LOG_HEAD + pages.MAX_LOG_TAIL + 100
    assert log.startswith(head)
    assert log.endswith(tail)
    cut = len(text) - pages.MAX_LOG_HEAD - pages.MAX_LOG_TAIL
    assert f"[... {cut:,} characters of this log omitted ...]" in log


# -- templates and static files -------------------------------------------------------------


def test_no_external_resources() -> None:
    for path in [*(WEB / "templates").iterdir(), *(WEB / "static").iterdir()]:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9]", text), path
        assert "@import" not in text, path


def test_search_script_never_writes_html() -> None:
    script = (WEB / "static" / "search.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    assert 'fetch("/packages.json")' in script


def test_templates_have_no_inline_script_or_safe_filter() -> None:
    for path in (WEB / "templates").iterdir():
        text = path.read_text()
        assert "|safe" not in text.replace(" ", ""), path
        assert "autoescape false" not in text, path
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path


def test_project_links_provenance(project: ProjectData) -> None:
    """A wheel with its signed provenance beside it links it, on the page and in the JSON."""
    signed = project._replace(
        versions=[
            v._replace(files=[f._replace(provenance=True) for f in v.files])
            for v in project.versions
        ]
    )
    wheel = "foo_bar-2.0-cp39-cp39-linux_armv7l.whl"
    statement = f"/simple/foo-bar/{wheel}.provenance.json"
    page = pages.project_page(signed, apt_dependencies=[])
    assert f'<a class="provenance" href="{statement}">provenance</a>' in page
    assert statement not in pages.project_page(project, apt_dependencies=[])
    data = json.loads(pages.project_json(signed, []))
    files = [f for v in data["versions"] for f in v["files"]]
    assert {f["filename"]: f["provenance_url"] for f in files}[wheel] == statement
