"""piwheels.pypi.statuses: a project's PEP 792 status, from LocalPyPI and from hand-written
simple pages, and what the fetch processes make of it."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from scripted_index import Reply, client_for, json_reply, serve

from piwheels.abis import sorted_abis
from piwheels.master_support.fetch_workers import _fetch_one
from piwheels.protocols import Failure
from piwheels.protocols.messages import FetchEntry
from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import PyPIUnavailable, StaleResponse
from piwheels.records.removals import ProjectStatus
from pypi_index import LocalPyPI

ABIS = sorted_abis(["cp311"])


def test_statuses_from_the_local_index(index: LocalPyPI, client: PyPIClient) -> None:
    assert client.project_status("piwtest-pure") == ProjectStatus("active")
    index.set_status("piwtest-pure", "archived")
    assert client.project_status("PIWTEST_Pure") == ProjectStatus("archived")
    index.set_status("piwtest-pure", "quarantined", "malware in setup.py")
    assert client.project_status("piwtest-pure") == ProjectStatus(
        "quarantined", "malware in setup.py"
    )
    index.set_status("piwtest-pure", "active")
    assert client.project_status("piwtest-pure") == ProjectStatus("active")
    assert client.project_status("no-such-project") is None  # the page says nothing


def test_a_fetched_project_carries_its_status(index: LocalPyPI, client: PyPIClient) -> None:
    """The status costs one more request per project: its simple page, beside its JSON."""
    index.set_status("piwtest-cext", "deprecated", "use piwtest-pure")
    index.clear_requests()
    result = _fetch_one(client, FetchEntry("piwtest-cext", None), ABIS)
    assert result.project is not None
    assert '"project_status": "deprecated"' in result.project.row.row
    assert '"status_reason": "use piwtest-pure"' in result.project.row.row
    assert [r.path for r in index.requests] == ["/pypi/piwtest-cext/json", "/simple/piwtest-cext/"]


def test_a_quarantined_project_whose_details_are_withheld(
    index: LocalPyPI, client: PyPIClient
) -> None:
    """PyPI's JSON API may answer 404 for a quarantined project: its simple page says why, and
    the status alone is recorded. Served its details, the status comes with them."""
    index.set_status("piwtest-pure", "quarantined", "malware")
    serial = index.project_serial("piwtest-pure")
    result = _fetch_one(client, FetchEntry("piwtest-pure", serial), ABIS)
    assert result == (None, Failure("quarantined", "malware"))
    # followed by an allow-list (no serial) too: never mistaken for a removal
    result = _fetch_one(client, FetchEntry("piwtest-pure", None), ABIS)
    assert result == (None, Failure("quarantined", "malware"))

    index.quarantine_hides_details = False
    result = _fetch_one(client, FetchEntry("piwtest-pure", serial), ABIS)
    assert result.project is not None
    assert '"project_status": "quarantined"' in result.project.row.row


def test_a_removed_project_is_still_removed(index: LocalPyPI, client: PyPIClient) -> None:
    index.remove_project("piwtest-cext")
    assert _fetch_one(client, FetchEntry("piwtest-cext", None), ABIS) == (None, None)
    index.restore_project("piwtest-cext")
    assert _fetch_one(client, FetchEntry("piwtest-cext", None), ABIS).project is not None


def page(status: Any = None, *, api: str = "1.4", serial: int = 42) -> dict[str, Any]:
    document: dict[str, Any] = {
        "meta": {"api-version": api, "_last-serial": serial},
        "name": "demo-pkg",
        "files": [],
        "versions": [],
    }
    if status is not None:
        document["project-status"] = status
    return document


@pytest.mark.parametrize(
    ("document", "expected", "logged"),
    [
        (page(), ProjectStatus("active"), ""),
        (page({"status": "archived"}), ProjectStatus("archived"), ""),
        (page({"status": "deprecated", "reason": ""}), ProjectStatus("deprecated"), ""),
        # before 1.4 there were no statuses: whatever the page holds, the project is active
        (page({"status": "quarantined"}, api="1.3"), ProjectStatus("active"), ""),
        # what an index says wrong is logged once and read as active, or as no reason
        (page({"status": "haunted"}), ProjectStatus("active"), "unknown project-status"),
        (page({"status": ["quarantined"]}), ProjectStatus("active"), "unknown project-status"),
        (page("quarantined"), ProjectStatus("active"), "project-status is 'quarantined'"),
        (
            page({"status": "quarantined", "reason": 42}),
            ProjectStatus("quarantined"),
            "reason 42 ignored",
        ),
        (
            page({"status": "archived", "reason": "x" * 5000}),
            ProjectStatus("archived"),
            "reason of 5000 characters ignored",
        ),
        # a page that cannot be read says nothing: the status on record stands
        (page(api="2.0"), None, "meta.api-version is '2.0'"),
        ({"name": "demo-pkg"}, None, "no 'meta' object"),
        ([1, 2], None, "no 'meta' object"),
    ],
)
def test_statuses_read_from_a_page(
    document: Any,
    expected: ProjectStatus | None,
    logged: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    def answer(handler: BaseHTTPRequestHandler) -> Reply:
        seen.append(handler.path)
        return json_reply(document, serial=42)

    with caplog.at_level(logging.WARNING, logger="piwheels.pypi"), serve(answer) as base:
        assert client_for(base).project_status("Demo.Pkg", min_serial=42) == expected
    assert seen == ["/simple/demo-pkg/"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == (1 if logged else 0), warnings
    assert logged in "".join(warnings)


def test_pages_that_are_not_worth_believing() -> None:
    """An older page than the project's details is a cache lagging behind, and an index that
    cannot answer may later: both are asked again. Neither HTML nor a 404 says anything."""
    with serve(lambda _: json_reply(page(), serial=41)) as base:
        with pytest.raises(StaleResponse, match="serial 41 where 42 is known"):
            client_for(base).project_status("demo-pkg", min_serial=42)
        assert client_for(base).project_status("demo-pkg", min_serial=41) == ("active", None)
    busy = (503, {"Content-Type": "text/plain"}, b"busy")
    with serve(lambda _: busy) as base, pytest.raises(PyPIUnavailable):
        client_for(base).project_status("demo-pkg")
    with serve(lambda _: (200, {"Content-Type": "text/html"}, b"<html></html>")) as base:
        assert client_for(base).project_status("demo-pkg") is None
    with serve(lambda _: (404, {"Content-Type": "text/plain"}, b"")) as base:
        assert client_for(base).project_status("demo-pkg") is None
    with serve(lambda _: (200, {"Content-Type": "text/plain"}, b"")) as base:
        assert client_for(base).project_status("../etc") is None  # never a URL
