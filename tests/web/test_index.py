"""piwheels.web.index against the PEPs: 503 (names, links, hashes), 592 (yanked), 629 (version
meta), 658/714 (core metadata), 691 (JSON), 700 (versions, size, upload-time).

Both forms of each page are parsed back (html.parser, json) and compared file by file.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from piwheels.records.builds import BuildState
from piwheels.records.projects import AbiCell, BuildInfo, ProjectData, VersionInfo, WheelFile
from piwheels.web import index

UPLOADED = datetime(2026, 11, 1, 12, 30, 5, 123456, tzinfo=UTC)
PEP700_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
HOSTILE_REQUIRES = '>=3.9"><script>alert(1)</script>'


class Page(HTMLParser):
    """The anchors and meta tags of a page, attribute values unescaped as a client reads them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.meta: dict[str, str | None] = {}
        self.tags: list[str] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._open, self._text = dict(attrs), []
        elif tag == "meta":
            values = dict(attrs)
            if values.get("name"):
                self.meta[str(values["name"])] = values.get("content")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text)))
            self._open = None


def wheel(
    filename: str,
    *,
    requires_python: str | None = ">=3.9",
    yanked: str | None = None,
    metadata_hash: str | None = "b" * 64,
    uploaded: datetime = UPLOADED,
) -> WheelFile:
    return WheelFile(
        filename=filename,
        filesize=123_456,
        filehash=f"{len(filename):064x}",
        requires_python=requires_python,
        uploaded=uploaded,
        yanked=yanked,
        metadata_hash=metadata_hash,
        abi_tag=filename.removesuffix(".whl").split("-")[-2],
        apt_dependencies=(),
    )


def version(number: str, files: list[WheelFile], *, yanked: bool = False) -> VersionInfo:
    cells = {"cp311": AbiCell(BuildState.BUILT if files else BuildState.PENDING, "", None)}
    builds = [BuildInfo(1, "cp311", True, UPLOADED, timedelta(seconds=5), 1)] if files else []
    return VersionInfo(number, UPLOADED, yanked, "", cells, builds, files)


def project(versions: list[VersionInfo], name: str = "foo-bar") -> ProjectData:
    return ProjectData(name, "Foo.Bar", "summary", "description", ["cp39", "cp311"], versions)


@pytest.fixture
def sample() -> ProjectData:
    return project(
        [
            version("2.0", []),  # not built yet: no files, so not in PEP 700's versions
            version(
                "1.1",
                [
                    wheel("foo_bar-1.1-cp311-cp311-linux_armv7l.whl"),
                    wheel("foo_bar-1.1-cp39-cp39-linux_armv7l.whl", requires_python=None),
                ],
            ),
            version(
                "1.0",
                [wheel("foo_bar-1.0-py3-none-any.whl", metadata_hash=None)],
                yanked=True,
            ),
            version(
                "0.9",
                [wheel("foo_bar-0.9-py3-none-any.whl", yanked="broke <everything> & more")],
            ),
            # As PyPI spells it; the wheel's filename has the normal form.
            version("1.0.0-RC1", [wheel("foo_bar-1.0.0rc1-py3-none-any.whl")]),
        ]
    )


def parse(page: tuple[str, bytes]) -> tuple[Page, dict]:
    html, body = page
    assert isinstance(html, str)
    assert isinstance(body, bytes)
    return Page(html), json.loads(body)


# -- the root -------------------------------------------------------------------------------


def test_root_lists_each_project_once_in_both_forms() -> None:
    names = ["a", "foo-bar-baz", "zope-interface", "x1-2-3"]
    html, data = parse(index.simple_root(names))
    assert html.meta["pypi:repository-version"] == "1.1"
    assert [(attrs["href"], text) for attrs, text in html.anchors] == [
        (f"{name}/", name) for name in names
    ]
    assert data == {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}


def test_empty_root() -> None:
    html, data = parse(index.simple_root([]))
    assert html.anchors == []
    assert data == {"meta": {"api-version": "1.1"}, "projects": []}


@pytest.mark.parametrize(
    "bad", ["Foo.Bar_baz", "foo--bar", "-foo", "foo-", "", "foo\nbar", "<script>", "caf\u00e9"]
)
def test_root_refuses_names_that_are_not_canonical(bad: str) -> None:
    # The root's speed rests on never escaping: a name needing it is a caller's bug.
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        index.simple_root(["good", bad, "also-good"])


def test_root_reads_an_iterator_once() -> None:
    _, data = parse(index.simple_root(iter(["a", "b"])))
    assert [p["name"] for p in data["projects"]] == ["a", "b"]


# -- a project ------------------------------------------------------------------------------


def test_json_fields(sample: ProjectData) -> None:
    _, data = parse(index.simple_project(sample))
    assert data["meta"] == {"api-version": "1.1"}
    assert data["name"] == "foo-bar"
    first = data["files"][0]
    assert first == {
        "filename": "foo_bar-1.1-cp311-cp311-linux_armv7l.whl",
        "url": "foo_bar-1.1-cp311-cp311-linux_armv7l.whl",
        "hashes": {"sha256": f"{len(first['filename']):064x}"},
        "requires-python": ">=3.9",
        "yanked": False,
        "core-metadata": {"sha256": "b" * 64},
        "size": 123_456,
        "upload-time": "2026-11-01T12:30:05.123456Z",
    }
    for file in data["files"]:
        # PEP 714: only the new key in JSON (old pips crash on dist-info-metadata).
        assert "dist-info-metadata" not in file
        assert "data-dist-info-metadata" not in file
        assert PEP700_TIME.fullmatch(file["upload-time"])
        assert isinstance(file["size"], int)


def test_yanked_files_are_marked_never_dropped(sample: ProjectData) -> None:
    html, data = parse(index.simple_project(sample))
    yanked = {file["filename"]: file["yanked"] for file in data["files"]}
    assert yanked == {
        "foo_bar-1.1-cp311-cp311-linux_armv7l.whl": False,
        "foo_bar-1.1-cp39-cp39-linux_armv7l.whl": False,
        "foo_bar-1.0-py3-none-any.whl": True,  # a yanked version, no reason: plain true
        "foo_bar-0.9-py3-none-any.whl": "broke <everything> & more",
        "foo_bar-1.0.0rc1-py3-none-any.whl": False,
    }
    marks = {text: attrs.get("data-yanked", "<absent>") for attrs, text in html.anchors}
    assert marks["foo_bar-1.0-py3-none-any.whl"] == ""
    assert marks["foo_bar-0.9-py3-none-any.whl"] == "broke <everything> & more"
    assert marks["foo_bar-1.1-cp39-cp39-linux_armv7l.whl"] == "<absent>"


def test_pep700_versions(sample: ProjectData) -> None:
    _, data = parse(index.simple_project(sample))
    # Every version with files (yanked ones included), normalised, once; 2.0 has none yet.
    assert sorted(data["versions"], key=Version) == ["0.9", "1.0.0rc1", "1.0", "1.1"]
    for file in data["files"]:
        assert str(parse_wheel_filename(file["filename"])[1]) in data["versions"]


def test_a_version_listed_once_and_a_legacy_version_kept() -> None:
    page = project(
        [
            version("1.0", [wheel("foo_bar-1.0-py3-none-any.whl")]),
            # Two records of one version (PyPI once allowed "1.0" beside "1.0.0"'s twin "1.0").
            version("1.0", [wheel("foo_bar-1.0-cp311-cp311-linux_armv7l.whl")]),
            version("2004d", [wheel("foo_bar-2004d-py3-none-any.whl")]),
        ]
    )
    _, data = parse(index.simple_project(page))
    assert data["versions"] == ["1.0", "2004d"]
    assert len(data["files"]) == 3


def test_upload_time_is_utc() -> None:
    elsewhere = UPLOADED.astimezone(timezone(timedelta(hours=-5)))
    page = project([version("1.0", [wheel("foo_bar-1.0-py3-none-any.whl", uploaded=elsewhere)])])
    _, data = parse(index.simple_project(page))
    assert data["files"][0]["upload-time"] == "2026-11-01T12:30:05.123456Z"


def test_html_meta_and_links(sample: ProjectData) -> None:
    html, _ = parse(index.simple_project(sample))
    assert html.meta["pypi:repository-version"] == "1.1"
    attrs, text = html.anchors[0]
    assert text == "foo_bar-1.1-cp311-cp311-linux_armv7l.whl"
    assert attrs["href"] == f"{text}#sha256={len(text):064x}"
    assert attrs["data-requires-python"] == ">=3.9"
    assert attrs["data-core-metadata"] == "sha256=" + "b" * 64
    # the old attribute would break pip < 23.2 on mixed-case names (see LEGACY_HTML_METADATA)
    assert "data-dist-info-metadata" not in attrs
    raw = index.simple_project(sample)[0]
    assert 'data-requires-python="&gt;=3.9"' in raw  # PEP 503: escaped < and >
    # PEP 700's fields stay out of the frozen HTML form.
    assert "upload-time" not in raw
    assert "123456" not in raw


def test_html_and_json_agree_file_by_file(sample: ProjectData) -> None:
    html, data = parse(index.simple_project(sample))
    assert len(html.anchors) == len(data["files"])
    for (attrs, text), file in zip(html.anchors, data["files"], strict=True):
        assert text == file["filename"]
        url, _, fragment = str(attrs["href"]).partition("#")
        assert url == file["url"]
        assert fragment == f"sha256={file['hashes']['sha256']}"
        assert attrs.get("data-requires-python") == file["requires-python"]
        if file["yanked"] is False:
            assert "data-yanked" not in attrs
        else:
            assert attrs["data-yanked"] == ("" if file["yanked"] is True else file["yanked"])
        if file["core-metadata"]:
            expected = f"sha256={file['core-metadata']['sha256']}"
            assert attrs["data-core-metadata"] == expected
            assert "data-dist-info-metadata" not in attrs
        else:
            assert "data-core-metadata" not in attrs
            assert "data-dist-info-metadata" not in attrs


def test_hostile_values_are_escaped_and_the_name_normalized() -> None:
    filename = 'foo_bar-1.0-py3-none-any"><script>alert(1)</script>.whl'
    page = ProjectData(
        "Foo.Bar_baz",
        "<script>alert(1)</script>",
        "<script>alert(1)</script>",
        "<script>alert(1)</script>",
        ["cp311"],
        [
            version(
                "1.0",
                [
                    wheel(
                        "foo_bar_baz-1.0-py3-none-any.whl",
                        requires_python=HOSTILE_REQUIRES,
                        yanked='"><script>alert(1)</script>',
                    ),
                    wheel("foo_bar_baz-1.0-cp311-cp311-linux_armv7l.whl")._replace(
                        filename=filename
                    ),
                ],
            )
        ],
    )
    raw, body = index.simple_project(page)
    html, data = parse((raw, body))
    assert "<script" not in raw
    assert html.tags.count("a") == 2  # no element was injected
    assert data["name"] == "foo-bar-baz"
    assert "Links for foo-bar-baz" in raw
    attrs, _ = html.anchors[0]
    assert attrs["data-requires-python"] == HOSTILE_REQUIRES
    assert attrs["data-yanked"] == '"><script>alert(1)</script>'
    attrs, text = html.anchors[1]
    assert text == filename
    # Percent-encoded, "/" included: a filename never reaches outside its project's folder.
    assert data["files"][1]["url"] == (
        "foo_bar-1.0-py3-none-any%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E.whl"
    )
    assert str(attrs["href"]).startswith(data["files"][1]["url"] + "#sha256=")


def test_a_project_without_files() -> None:
    html, data = parse(index.simple_project(project([version("1.0", [])])))
    assert html.anchors == []
    assert data["files"] == []
    assert data["versions"] == []


def test_json_is_ascii_even_with_a_lone_surrogate() -> None:
    page = project([version("1.0", [wheel("foo_bar-1.0-py3-none-any.whl", yanked="\ud800")])])
    body = index.simple_project(page)[1]
    body.decode("ascii")
    assert json.loads(body)["files"][0]["yanked"] == "\ud800"


# -- PEP 792: PyPI's project statuses, passed on ------------------------------------------------


def test_a_projects_status_is_passed_on_in_both_forms(sample: ProjectData) -> None:
    html, data = parse(index.simple_project(sample))
    assert "project-status" not in data  # active: said by saying nothing
    assert "pypi:project-status" not in html.meta

    archived = sample._replace(status="archived")
    html, data = parse(index.simple_project(archived))
    assert data["meta"]["api-version"] == html.meta["pypi:repository-version"] == "1.4"
    assert data["project-status"] == {"status": "archived"}
    assert html.meta["pypi:project-status"] == "archived"
    assert "pypi:project-status-reason" not in html.meta
    assert len(data["files"]) == len(html.anchors) == 5  # served as ever

    reason = 'malware "<script>alert(1)</script>"'
    quarantined = sample._replace(
        status="quarantined",
        status_reason=reason,
        versions=[
            v._replace(
                files=[f._replace(withheld=True, withheld_for=("quarantined",)) for f in v.files]
            )
            for v in sample.versions
        ],
    )
    page = index.simple_project(quarantined)
    html, data = parse(page)
    assert data["project-status"] == {"status": "quarantined", "reason": reason}
    assert (html.meta["pypi:project-status"], html.meta["pypi:project-status-reason"]) == (
        "quarantined",
        reason,
    )
    assert "<script>" not in page[0]
    assert data["files"] == html.anchors == []  # its files withheld: none offered
