"""piwheels.web.request_paths through a real server: nothing outside the output directory is
ever served, and what is inside is found."""

from __future__ import annotations

import logging

import pytest
from outputs import SECRET
from served_site import Site, fetch


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/../secret.txt", 400),
        ("/simple/../../secret.txt", 400),
        ("/simple/%2e%2e/%2e%2e/secret.txt", 400),
        ("/simple/%2E%2E%2F%2E%2E%2Fsecret.txt", 400),
        ("/static/..%5c..%5csecret.txt", 404),  # a backslash is a plain character on POSIX
        ("/simple/piwtest-pure/index.html%00.whl", 400),
        ("/simple/%ff/", 400),
        ("//secret.txt", 404),
        ("secret.txt", 400),
        ("/simple/piwtest-pure/escape.whl", 404),
        ("/simple/outside/secret.txt", 404),
        ("/simple/outside/", 404),
        ("/simple/piwtest-pure/.index.html.x1y2.tmp", 404),
        ("/simple/piwtest-pure/pipe.whl", 404),
    ],
)
def test_nothing_outside_is_served(
    site: Site, path: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="piwheels.web.server"):
        response = fetch(site.server, path)
    assert response.status == status
    assert SECRET not in response.body and b"half a page" not in response.body
    if status == 400 or "escape" in path or "outside/" in path:
        assert any("refused" in record.getMessage() for record in caplog.records), path


def test_symlinks_inside_are_followed(site: Site) -> None:
    response = fetch(site.server, "/simple/piwtest-pure/inside.whl")
    assert response.status == 200 and response.body == site.wheel.read_bytes()


@pytest.mark.parametrize("path", ["/simple/index.html", "/simple/index.json"])
def test_the_root_index_files_are_not_project_names(site: Site, path: str) -> None:
    response = fetch(site.server, path)
    assert response.status == 200
    assert response.body == (site.root / path.lstrip("/")).read_bytes()
