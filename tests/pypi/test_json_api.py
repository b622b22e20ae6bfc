"""piwheels.pypi.json_api: a project's details, from LocalPyPI and from a hand-written JSON API."""

from __future__ import annotations

from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from scripted_index import Reply, client_for, file_entry, json_reply, project_document, serve

from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import MalformedResponse, ProjectNotFound, StaleResponse
from pypi_index import LocalPyPI


def test_project_details(index: LocalPyPI, client: PyPIClient) -> None:
    released = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    index.add_wheel_only_version(
        "piwtest-pure", "2.0", requires_python=">=3.10", upload_time=released
    )
    info = client.project("piwtest-pure")
    assert (info.name, info.canonical_name) == ("piwtest-pure", "piwtest-pure")
    assert info.serial == index.project_serial("piwtest-pure")
    assert info.summary
    versions = {v.version: v for v in info.versions}
    assert sorted(versions) == ["1.0", "1.1", "2.0"]

    sdist = versions["1.0"]
    assert sdist.has_sdist and sdist.valid
    # the sdist a wheel's provenance names: its URL and SHA256 as the index lists them
    assert sdist.sdist_url.startswith(index.url) and sdist.sdist_url.endswith(".tar.gz")
    assert len(sdist.sdist_sha256) == 64
    assert sdist.requires_python == ">=3.8"
    assert not sdist.yanked and sdist.yanked_reason is None
    assert sdist.released is not None and sdist.released.tzinfo is not None
    assert abs(datetime.now(UTC) - sdist.released).total_seconds() < 600

    yanked = versions["1.1"]
    assert yanked.yanked and yanked.yanked_reason == "broken release, use 1.0"

    wheel_only = versions["2.0"]
    assert not wheel_only.has_sdist
    assert (wheel_only.sdist_url, wheel_only.sdist_sha256) == ("", "")
    assert wheel_only.requires_python == ">=3.10"
    assert wheel_only.released == released


def test_project_after_version_removed(index: LocalPyPI, client: PyPIClient) -> None:
    index.remove_version("piwtest-pure", "1.1")
    info = client.project("piwtest-pure", min_serial=index.project_serial("piwtest-pure"))
    assert [v.version for v in info.versions] == ["1.0"]


def test_project_by_unnormalised_name(client: PyPIClient) -> None:
    assert client.project("PIWTEST_Pure").canonical_name == "piwtest-pure"


def test_project_not_found(index: LocalPyPI, client: PyPIClient) -> None:
    with pytest.raises(ProjectNotFound) as caught:
        client.project("no-such-project")
    assert "no-such-project" in str(caught.value)
    assert index.url in str(caught.value)

    index.clear_requests()
    with pytest.raises(ProjectNotFound, match=r"'\.\./etc'"):
        client.project("../etc")
    assert index.requests == []  # never turned into a URL


# Project details from a hand-written JSON API ----------------------------------------------------


def test_project_fields() -> None:
    releases = {
        "1.0": [
            # The wheel came first; the sdist's Requires-Python is the one that counts.
            file_entry(
                "demo_pkg-1.0-py3-none-any.whl", "bdist_wheel", "2020-01-01T00:00:00Z", ">=3.6"
            ),
            file_entry("demo_pkg-1.0.tar.gz", "sdist", "2020-01-02T00:00:00.5Z", ">=3.7"),
        ],
        "1.1": [
            file_entry(
                "demo_pkg-1.1-cp311-cp311-linux_x86_64.whl",
                "bdist_wheel",
                "2021-03-04T05:06:07+02:00",
                " >=3.11 ",
            ),
        ],
        "1.2": [
            file_entry(
                "demo_pkg-1.2.tar.gz",
                "sdist",
                "2022-01-01T00:00:00Z",
                "",
                yanked=True,
                reason="bad",
            ),
        ],
        # Legacy versions PyPI still serves: kept, flagged, never a crash.
        "2004d": [
            {
                "filename": "demo_pkg-2004d.zip",
                "packagetype": "sdist",
                "upload_time": "2004-06-01T10:00:00",
            }
        ],
        "1.0-beta-final-really": [],
        "3.0": ["not a file", file_entry("demo_pkg-3.0.tar.gz", "sdist", "bad time")],
    }
    seen: list[str] = []

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        seen.append(handler.path)
        return json_reply(project_document(releases), serial=42, content_type="application/json")

    with serve(answer) as base:
        info = client_for(base).project("demo.pkg", min_serial=42)
    assert seen == ["/pypi/demo-pkg/json"]
    assert (info.name, info.canonical_name, info.serial) == ("Demo_Pkg", "demo-pkg", 42)
    assert (info.summary, info.description, info.description_content_type) == (
        "A demo",
        "Long text",
        "text/markdown",
    )
    versions = {v.version: v for v in info.versions}
    assert list(versions) == list(releases)

    v10 = versions["1.0"]
    assert v10.released == datetime(2020, 1, 1, tzinfo=UTC)
    assert (v10.requires_python, v10.has_sdist, v10.yanked, v10.valid) == (
        ">=3.7",
        True,
        False,
        True,
    )

    v11 = versions["1.1"]
    assert v11.released == datetime(2021, 3, 4, 3, 6, 7, tzinfo=UTC)
    assert v11.released.tzinfo is UTC
    assert (v11.requires_python, v11.has_sdist) == (">=3.11", False)

    v12 = versions["1.2"]
    assert (v12.yanked, v12.yanked_reason, v12.requires_python) == (True, "bad", None)

    legacy = versions["2004d"]
    assert not legacy.valid
    assert legacy.has_sdist
    assert legacy.released == datetime(2004, 6, 1, 10, tzinfo=UTC)

    empty = versions["1.0-beta-final-really"]
    assert not empty.valid
    assert (empty.released, empty.has_sdist, empty.yanked) == (None, False, False)

    v30 = versions["3.0"]
    assert (v30.released, v30.has_sdist) == (None, True)


@pytest.mark.parametrize(
    ("document", "serial", "error", "problem"),
    [
        (project_document({}, name="someone-else"), 42, MalformedResponse, "'someone-else'"),
        ({"info": {}, "last_serial": 42}, 42, MalformedResponse, "'releases'"),
        ({**project_document({}), "last_serial": "42"}, 42, MalformedResponse, "'42'"),
        (project_document({}), 41, StaleResponse, "serial 41 where 42 is known"),
    ],
)
def test_bad_project(document: Any, serial: int, error: type[Exception], problem: str) -> None:
    reply = json_reply(document, serial=serial, content_type="application/json")
    with serve(lambda _: reply) as base, pytest.raises(error) as caught:
        client_for(base).project("demo-pkg")
    assert problem in str(caught.value)
    assert f"{base}/pypi/demo-pkg/json" in str(caught.value)


def test_the_sdist_a_provenance_names_is_resolved_as_pip_would() -> None:
    """A mirror may list files by URLs relative to the JSON document (this machine's did):
    they are resolved against it; an sdist without a usable URL or SHA256 names none."""
    relative = file_entry("demo_pkg-1.0.tar.gz", "sdist", "2020-01-02T00:00:00Z")
    relative["url"] = "../../packages/ab/cd/demo_pkg-1.0.tar.gz"
    relative["digests"] = {"sha256": "a" * 64}
    unhashed = file_entry("demo_pkg-2.0.tar.gz", "sdist", "2020-01-02T00:00:00Z")
    unhashed["digests"] = {"md5": "0" * 32}
    releases = {"1.0": [relative], "2.0": [unhashed]}

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        return json_reply(project_document(releases), serial=42, content_type="application/json")

    with serve(answer) as base:
        versions = {v.version: v for v in client_for(base).project("demo.pkg").versions}
    assert versions["1.0"].sdist_url == f"{base}/packages/ab/cd/demo_pkg-1.0.tar.gz"
    assert versions["1.0"].sdist_sha256 == "a" * 64
    assert (versions["2.0"].sdist_url, versions["2.0"].sdist_sha256) == ("", "")
