"""piwheels.web.http_headers: the Accept and Range rules, without a server."""

from __future__ import annotations

import pytest
from outputs import BROWSER_ACCEPT, PIP_ACCEPT, UV_ACCEPT

from piwheels.web.http_headers import HTML_V1_TYPE, JSON_TYPE, negotiate, parse_range


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("", "text/html"),
        ("*/*", "text/html"),
        (BROWSER_ACCEPT, "text/html"),
        ("text/html", "text/html"),
        (PIP_ACCEPT, JSON_TYPE),
        (UV_ACCEPT, JSON_TYPE),
        (HTML_V1_TYPE, HTML_V1_TYPE),
        (JSON_TYPE, JSON_TYPE),
        # q-values, not the order written, decide.
        (f"text/html;q=0.5, {JSON_TYPE};q=0.9", JSON_TYPE),
        (f"{JSON_TYPE};q=0.2, text/html", "text/html"),
        # A wildcard does not override what the client refused by name.
        (f"{JSON_TYPE};q=0, */*", "text/html"),
        (f"text/html;q=0, {HTML_V1_TYPE};q=0, */*;q=0.1", JSON_TYPE),
        # Named beats wildcard at equal quality.
        (f"*/*, {JSON_TYPE}", JSON_TYPE),
        ("application/*", HTML_V1_TYPE),
        ("TEXT/HTML; Q=0.3", "text/html"),
        ("application/json", None),
        (f"{JSON_TYPE};q=0", None),
        (f"{JSON_TYPE};q=oops", None),
        ("image/png, text/plain", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_parse_range_edges() -> None:
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=", 10) is None  # malformed: ignored, not refused
    with pytest.raises(ValueError, match="unsatisfiable"):
        parse_range("bytes=-0", 10)
    with pytest.raises(ValueError, match="unsatisfiable"):
        parse_range("bytes=-5", 0)
