"""piwheels.pypi.simple_index: the project list, from LocalPyPI and from servers that misbehave."""

from __future__ import annotations

import logging

import pytest
from scripted_index import SIMPLE_JSON, client_for, json_reply, root, serve

from piwheels import __version__
from piwheels.pypi.answers import ProjectSerial
from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import MalformedResponse, StaleResponse, UnsupportedIndex
from pypi_index import LocalPyPI


def test_list_projects(index: LocalPyPI, client: PyPIClient) -> None:
    serial, projects = client.list_projects()
    assert serial == index.serial
    assert projects == {
        name: ProjectSerial(name, name, index.project_serial(name))
        for name in ("piwtest-cext", "piwtest-pure")
    }
    request = index.requests[-1]
    assert request.accept == SIMPLE_JSON
    assert request.user_agent == f"piwheels/{__version__}"


def test_malformed_entries_skipped(caplog: pytest.LogCaptureFixture) -> None:
    document = root(
        [
            {"name": "Good.Name", "_last-serial": 7},
            {"_last-serial": 8, "name": "other", "extra": [1]},
            {"name": "../etc", "_last-serial": 1},
            {"name": "flag", "_last-serial": True},
            {"name": "negative", "_last-serial": -1},
            {"name": 5, "_last-serial": 1},
            {"name": "no-serial"},
            "a string",
            # Two spellings of one project: the later change wins.
            {"name": "Dup", "_last-serial": 9},
            {"name": "dup", "_last-serial": 3},
        ]
    )
    with (
        serve(lambda _: json_reply(document, serial=100)) as base,
        caplog.at_level(logging.WARNING),
    ):
        serial, projects = client_for(base).list_projects()
    assert serial == 100
    assert projects == {
        "good-name": ProjectSerial("Good.Name", "good-name", 7),
        "other": ProjectSerial("other", "other", 8),
        "dup": ProjectSerial("Dup", "dup", 9),
    }
    messages = [record.getMessage() for record in caplog.records]
    assert any("skipped 6 malformed project entries" in message for message in messages)
    assert any("'Dup'" in message and "'dup'" in message for message in messages)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"meta": {"api-version": "1.1"}, "projects": [', "bad JSON at line 1 column"),
        (b"[1, 2]", "expected an object"),
        (b'{"meta": {"api-version": "1.1"}}', "'projects'"),
        (b'{"meta": {}, "projects": []}', "api-version is None"),
        (b'{"meta": {"api-version": "1.1", "_last-serial": "9"}, "projects": []}', "'9'"),
        (b"\xff\xfe{}", "not UTF-8 at byte 0"),
    ],
)
def test_malformed_root(body: bytes, problem: str) -> None:
    with (
        serve(lambda _: (200, {"Content-Type": SIMPLE_JSON}, body)) as base,
        pytest.raises(MalformedResponse) as caught,
    ):
        client_for(base).list_projects()
    assert problem in str(caught.value)
    assert f"{base}/simple/" in str(caught.value)


def test_serial_from_header_or_projects() -> None:
    document = root([{"name": "a", "_last-serial": 5}, {"name": "b", "_last-serial": 9}], None)
    with serve(lambda _: json_reply(document, serial=12)) as base:
        assert client_for(base).list_projects().serial == 12
    with serve(lambda _: json_reply(document)) as base:
        assert client_for(base).list_projects().serial == 9


def test_no_index_there() -> None:
    with (
        serve(lambda _: (404, {"Content-Type": "text/plain"}, b"Not Found\n")) as base,
        pytest.raises(UnsupportedIndex, match="HTTP 404: no simple index there"),
    ):
        client_for(base).list_projects()


def test_stale_header() -> None:
    document = root([{"name": "a", "_last-serial": 5}], 12)
    with (
        serve(lambda _: json_reply(document, serial=10)) as base,
        pytest.raises(StaleResponse, match="serial 10 where 12 is known"),
    ):
        client_for(base).list_projects()


def test_future_api_version() -> None:
    with (
        serve(lambda _: json_reply(root([], api="2.0"))) as base,
        pytest.raises(UnsupportedIndex, match=r"2\.0"),
    ):
        client_for(base).list_projects()
