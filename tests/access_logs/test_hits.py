"""Which lines count, and as what: the hits in the real servers' logs (logs/), then the paths and
answers around each rule, in lines as nginx writes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from access_logs.captured import FIREFOX, PIP_26_3, UV_0_13_9, log_lines
from piwheels.access_logs.clients import parse_user_agent
from piwheels.access_logs.hits import Hit, HitKind, classify
from piwheels.access_logs.lines import parse_line

WHEEL = "piwtest_pure-1.0-py3-none-any.whl"
DOWNLOAD, SEARCH = HitKind.DOWNLOAD, HitKind.SEARCH
PAGE, JSON = HitKind.PROJECT_PAGE, HitKind.PROJECT_JSON

# (line number, kind, file, installer) of every hit in nginx.log
NGINX_HITS = [
    (1, SEARCH, None, "pip"),  # pip 26.3
    (2, DOWNLOAD, WHEEL, "pip"),
    (3, SEARCH, None, "pip"),  # pip 23.2.1
    (4, DOWNLOAD, WHEEL, "pip"),
    (5, SEARCH, None, "uv"),  # then uv's HEAD (6) and range request (7) do not count
    (8, DOWNLOAD, WHEEL, "uv"),
    (9, PAGE, None, "mozilla"),
    (10, JSON, None, "mozilla"),  # and the browser reading /simple/ (11) is no search
    (13, PAGE, None, "tab"),
    (14, JSON, None, None),
    (15, DOWNLOAD, WHEEL, "curl"),  # over IPv6, the path percent-encoded
    # 24: /simple/ read by an agent "nul\x01ctl ...", which is no installer
    (27, SEARCH, None, "pip"),  # an absolute-form target; not the "..", nor the "//" paths
    (30, SEARCH, None, "pip"),  # index.html
]


def hits(name: str) -> list[tuple[int, HitKind, str | None, str | None]]:
    found = []
    for number, text in enumerate(log_lines(name), start=1):
        hit = classify(parse_line(text))
        if hit is not None:
            assert hit.project == "piwtest-pure"
            found.append((number, hit.kind, hit.filename, hit.client.installer))
    return found


def test_the_hits_in_nginx_log() -> None:
    assert hits("nginx.log") == NGINX_HITS


def test_apache_logs_the_same_hits() -> None:
    # Apache's log lacks two of nginx's raw requests (see logs/README.md)
    assert hits("apache.log") == [
        (number if number < 21 else number - 2, kind, filename, installer)
        for number, kind, filename, installer in NGINX_HITS
    ]


def test_a_hit_carries_the_time_and_client() -> None:
    hit = classify(parse_line(log_lines("nginx.log")[1]))
    assert hit == Hit(
        kind=DOWNLOAD,
        project="piwtest-pure",
        filename=WHEEL,
        time=datetime(2026, 12, 7, 11, 14, 51, tzinfo=UTC),
        client=parse_user_agent(PIP_26_3),
    )


def nginx_line(
    path: str, *, method: str = "GET", status: int = 200, agent: str | None = PIP_26_3
) -> str:
    """A line as nginx writes it for this request."""
    logged = "-" if agent is None else agent.replace('"', "\\x22")
    return (
        f'192.0.2.7 - - [07/Dec/2026:16:44:51 +0530] "{method} {path} HTTP/1.1" {status} 960 '
        f'"-" "{logged}"'
    )


def kind_of(
    path: str, *, method: str = "GET", status: int = 200, agent: str | None = PIP_26_3
) -> tuple[HitKind, str, str | None] | None:
    hit = classify(parse_line(nginx_line(path, method=method, status=status, agent=agent)))
    return None if hit is None else (hit.kind, hit.project, hit.filename)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/simple/foo/", (SEARCH, "foo", None)),
        ("/simple/foo/index.html", (SEARCH, "foo", None)),
        ("/simple/foo/index.json", (SEARCH, "foo", None)),
        ("/simple/Foo_Bar.baz/", (SEARCH, "foo-bar-baz", None)),
        ("/simple/foo/foo-1.0-py3-none-any.whl", (DOWNLOAD, "foo", "foo-1.0-py3-none-any.whl")),
        (
            "/simple/foo-bar/Foo_Bar-2.0-1-cp311-cp311-linux_armv7l.whl",
            (DOWNLOAD, "foo-bar", "Foo_Bar-2.0-1-cp311-cp311-linux_armv7l.whl"),
        ),
        ("/project/foo/", (PAGE, "foo", None)),
        ("/project/foo/index.html", (PAGE, "foo", None)),
        ("/project/foo/json/", (JSON, "foo", None)),
        ("/project/foo/json/index.json", (JSON, "foo", None)),
        ("/simple/foo%2Dbar/", (SEARCH, "foo-bar", None)),
        # not one of ours
        ("/", None),
        ("/simple/", None),
        ("/simple/index.html", None),
        ("/simple/foo", None),
        ("/project/foo", None),
        ("/project/foo/json", None),
        ("/project/foo/index.json", None),
        ("/project/foo/json/index.html", None),
        ("/project/foo/other/", None),
        ("/simple/foo/index.htm", None),
        ("/logs/0000/0001/1234.txt.gz", None),
        ("/simple/foo/foo-1.0.tar.gz", None),
        ("/simple/foo/foo-1.0-py3-none-any.whl.metadata", None),
        ("/simple/foo/foo-1.0-py3-none-any.whl/", None),
        # a wheel that is not one, or not the directory's
        ("/simple/foo/foo.whl", None),
        ("/simple/foo/foo-1.0-py3-none.whl", None),
        ("/simple/foo/foo-one-py3-none-any.whl", None),
        ("/simple/foo/foo__bar-1.0-py3-none-any.whl", None),
        ("/simple/foo/bar-1.0-py3-none-any.whl", None),
        ("/simple/foo/foo_bar-1.0-py3-none-any.whl", None),
        ("/simple/foo/\u212aiwi-1.0-py3-none-any.whl", None),  # the Kelvin sign, lower() "k"
        ("/simple/kiwi/kiwi-1.0-py3-none-any%0A.whl", None),
        # names that are not names
        ("/simple/-foo-/", None),
        ("/simple/foo bar/", None),
        ("/simple/foo%0A/", None),
        ("/simple/\u212aiwi/", None),
        ("/simple/caf%C3%A9/", None),
        ("/project/foo%00/", None),
        # climbing, doubled slashes, extra components
        ("/simple/../foo/", None),
        ("/simple/foo/../bar/", None),
        ("/simple/./", None),
        ("/simple//foo/", None),
        ("//simple/foo/", None),
        ("/simple/foo//", None),
        ("/project/foo//json/", None),
        ("/simple/foo%2Fbar/", None),
        ("/simple/foo/bar/foo-1.0-py3-none-any.whl", None),
    ],
)
def test_paths(path: str, expected: tuple[HitKind, str, str | None] | None) -> None:
    assert kind_of(path) == expected


@pytest.mark.parametrize(
    ("method", "status", "counted"),
    [
        ("GET", 200, True),
        ("GET", 206, False),  # a part of the file (uv reads a wheel's metadata so)
        ("GET", 304, False),  # the client had it
        ("GET", 404, False),
        ("GET", 500, False),
        ("HEAD", 200, False),
        ("POST", 200, False),
        ("get", 200, False),
    ],
)
def test_only_a_get_answered_200_counts(method: str, status: int, counted: bool) -> None:
    for path in ("/simple/foo/", "/simple/foo/foo-1.0-py3-none-any.whl", "/project/foo/"):
        assert (kind_of(path, method=method, status=status) is not None) is counted


@pytest.mark.parametrize(
    ("agent", "search"),
    [
        (PIP_26_3, True),
        (UV_0_13_9, True),
        ("pip/26.3", True),  # an installer without its JSON is still one
        (FIREFOX, False),
        ("curl/7.88.1", False),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", False),
        ("pipx/1.0", False),
        (None, False),
    ],
)
def test_only_installers_search(agent: str | None, search: bool) -> None:
    assert (kind_of("/simple/foo/", agent=agent) is not None) is search
    # anyone's download or page view counts
    assert kind_of("/simple/foo/foo-1.0-py3-none-any.whl", agent=agent) is not None
    assert kind_of("/project/foo/", agent=agent) is not None


def test_a_request_that_was_not_one_is_no_hit() -> None:
    for text in log_lines("nginx.log")[20:26]:
        assert classify(parse_line(text)) is None
