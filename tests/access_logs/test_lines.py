"""Access log lines as nginx and Apache wrote them (logs/, captured from real servers) turned into
their fields, and lines no server writes refused with a short reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from access_logs.captured import FIREFOX, PIP_23_2_1, PIP_26_3, UV_0_13_9, log_lines
from piwheels.access_logs import lines as lines_module
from piwheels.access_logs.lines import AccessLine, BadLine, format_line, parse_line, parse_time

NGINX = log_lines("nginx.log")
APACHE = log_lines("apache.log")
WHEEL = "/simple/piwtest-pure/piwtest_pure-1.0-py3-none-any.whl"


@pytest.mark.parametrize("name", ["nginx.log", "apache.log", "nginx-timed.log", "apache-timed.log"])
def test_every_line_real_servers_wrote_parses(name: str) -> None:
    for line in log_lines(name):
        assert isinstance(parse_line(line), AccessLine)


def test_a_pip_download_logged_by_nginx() -> None:
    assert parse_line(NGINX[1]) == AccessLine(
        host="127.0.0.1",
        time=datetime(2026, 12, 7, 11, 14, 51, tzinfo=UTC),  # logged at 16:44:51 +0530
        method="GET",
        path=WHEEL,
        query="",
        status=200,
        size=960,
        referrer=None,
        user_agent=PIP_26_3,  # nginx wrote each `"` as \x22
    )


def test_a_pip_download_logged_by_apache() -> None:
    assert parse_line(APACHE[1]) == AccessLine(
        host="127.0.0.1",
        time=datetime(2026, 12, 7, 11, 14, 53, tzinfo=UTC),  # logged at 06:14:53 -0500
        method="GET",
        path=WHEEL,
        query="",
        status=200,
        size=960,
        referrer=None,
        user_agent=PIP_26_3,  # Apache wrote each `"` as \"
    )


def test_both_servers_log_the_same_requests_alike() -> None:
    # the first 20 requests of each log were the same; error pages' sizes differ
    for nginx, apache in zip(NGINX[:20], APACHE[:20], strict=True):
        ours, theirs = parse_line(nginx), parse_line(apache)
        assert (ours.method, ours.path, ours.query, ours.status) == (
            theirs.method,
            theirs.path,
            theirs.query,
            theirs.status,
        )
        assert (ours.host, ours.referrer, ours.user_agent) == (
            theirs.host,
            theirs.referrer,
            theirs.user_agent,
        )


def test_the_agents_of_real_installers_come_back_whole() -> None:
    agents = {parse_line(line).user_agent for line in NGINX + APACHE}
    assert {PIP_26_3, PIP_23_2_1, UV_0_13_9, FIREFOX} <= agents


@pytest.mark.parametrize("log", [NGINX, APACHE], ids=["nginx", "apache"])
def test_escaped_agents_are_unescaped(log: list[str]) -> None:
    # sent as: odd "quoted" \back\slash\ Bücher/1.0 (UTF-8), and with a tab
    assert parse_line(log[11]).user_agent == 'odd "quoted" \\back\\slash\\ Bücher/1.0'
    assert parse_line(log[12]).user_agent == "tab\there"


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    # sent as "nul\x01ctl \xff\xfe raw"; nginx escaped every byte
    assert parse_line(NGINX[23]).user_agent == "nul\x01ctl \ufffd\ufffd raw"


@pytest.mark.parametrize("log", [NGINX, APACHE], ids=["nginx", "apache"])
def test_fields_the_combined_format_leaves_empty(log: list[str]) -> None:
    with_referrer = parse_line(log[8])
    assert with_referrer.referrer == "https://www.piwheels.org/search/?q=piwtest"
    assert parse_line(log[13]).user_agent is None  # no User-Agent header: "-"
    assert parse_line(log[15]).size == 0  # a HEAD: nginx writes 0, Apache "-"
    assert parse_line(log[17]).size == 0  # a 304


@pytest.mark.parametrize("log", [NGINX, APACHE], ids=["nginx", "apache"])
def test_ipv6_hosts_and_percent_encoded_paths(log: list[str]) -> None:
    line = parse_line(log[14])  # GET /simple/piwtest%2Dpure/<wheel> over [::1]
    assert (line.host, line.path) == ("::1", WHEEL)


@pytest.mark.parametrize("log", [NGINX, APACHE], ids=["nginx", "apache"])
def test_the_query_is_kept_raw_and_apart_from_the_path(log: list[str]) -> None:
    line = parse_line(log[19])
    assert (line.path, line.query) == ("/simple/piwtest-pure/", "x=1&y=%22")


@pytest.mark.parametrize("log", [NGINX, APACHE], ids=["nginx", "apache"])
def test_an_absolute_form_target_gives_its_path(log: list[str]) -> None:
    line = parse_line(log[-4])  # GET http://127.0.0.1:PORT/simple/piwtest-pure/ HTTP/1.1
    assert (line.method, line.path, line.status) == ("GET", "/simple/piwtest-pure/", 200)


@pytest.mark.parametrize("log", [NGINX, APACHE], ids=["nginx", "apache"])
def test_paths_are_not_normalised(log: list[str]) -> None:
    assert parse_line(log[-3]).path == "/simple/../simple/piwtest-pure/"
    assert parse_line(log[-2]).path == "//simple//piwtest-pure/"


def test_requests_that_are_not_method_target_protocol_have_no_method_or_path() -> None:
    nginx = [parse_line(line) for line in NGINX[20:23] + NGINX[24:25]]
    # GARBAGE, a TLS handshake, a target with a space, an empty request: all answered 400
    assert [(line.method, line.path, line.status) for line in nginx] == [("", "", 400)] * 4
    # Apache cut the request with a space at it: "GET /simple/a b/"
    assert (parse_line(APACHE[21]).method, parse_line(APACHE[21]).path) == ("", "")


@pytest.mark.parametrize(("log", "index"), [(NGINX, 25), (APACHE, 23)], ids=["nginx", "apache"])
def test_quotes_and_backslashes_in_the_request(log: list[str], index: int) -> None:
    assert parse_line(log[index]).path == '/simple/"quo\\te"/'


@pytest.mark.parametrize(
    ("plain", "timed"),
    [("nginx.log", "nginx-timed.log"), ("apache.log", "apache-timed.log")],
)
def test_fields_appended_after_the_agent_are_ignored(plain: str, timed: str) -> None:
    for line, with_time in zip(log_lines(plain), log_lines(timed), strict=True):
        assert parse_line(line) == parse_line(with_time)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("07/Dec/2026:16:44:51 +0530", datetime(2026, 12, 7, 11, 14, 51, tzinfo=UTC)),
        ("07/Dec/2026:06:14:53 -0500", datetime(2026, 12, 7, 11, 14, 53, tzinfo=UTC)),
        ("31/Dec/2026:23:30:00 -0100", datetime(2027, 1, 1, 0, 30, tzinfo=UTC)),
        ("29/Feb/2028:00:00:00 +0000", datetime(2028, 2, 29, tzinfo=UTC)),
    ],
)
def test_times_are_converted_to_utc(text: str, utc: datetime) -> None:
    assert parse_time(text) == utc
    assert parse_time(text).tzinfo is UTC


GOOD = NGINX[1]
GOOD_TIME = "07/Dec/2026:16:44:51 +0530"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "not a combined log line"),
        (GOOD[:200], "not a combined log line"),  # cut short
        (GOOD.rsplit(' "', 1)[0], "not a combined log line"),  # no user agent: common format
        (GOOD.replace('" 200 960 "', '" 2x0 960 "'), "not a combined log line"),
        (GOOD.replace('" 200 960 "', '" 200 9a0 "'), "not a combined log line"),
        (GOOD.replace('" 200 960 "', '" 200 ' + "9" * 30 + ' "'), "not a combined log line"),
        (GOOD.replace('" 200 960 "', '" \u0662\u0660\u0660 960 "'), "not a combined log line"),
        (GOOD.replace('" 200 960 "', '" 200 960 '), "not a combined log line"),  # a quote lost
        (GOOD.replace(GOOD_TIME, "32/Dec/2026:16:44:51 +0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "07/Dez/2026:16:44:51 +0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "07/Dec/2026:24:44:51 +0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "07/Dec/2026:16:44:51 +2400"), "bad time"),
        (GOOD.replace(GOOD_TIME, "07/Dec/2026:16:44:51 0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "07/Dec/2026 16:44:51 +0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "7/Dec/2026:16:44:51 +0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "07/Dec/0000:16:44:51 +0530"), "bad time"),
        (GOOD.replace(GOOD_TIME, "01/Jan/0001:00:00:00 +0100"), "bad time"),  # before year 1 UTC
        (GOOD.replace(GOOD_TIME, "\u0660\u0667/Dec/2026:16:44:51 +0530"), "bad time"),
    ],
)
def test_structurally_broken_lines_are_refused(line: str, reason: str) -> None:
    with pytest.raises(BadLine, match=f"^{reason}"):
        parse_line(line)


def test_a_million_characters_of_garbage_are_refused_quickly_and_briefly() -> None:
    for garbage in (
        "x" * 1_000_000,
        '1.2.3.4 - - [07/Dec/2026:16:44:51 +0530] "' + "\\" * 1_000_000,
        "1.2.3.4 - " + ' [x] "' * 200_000,  # a time's start again and again
        GOOD.split(' "-" ')[0] + ' "-" "' + '\\"' * 500_000,  # an agent that never ends
    ):
        started = time.perf_counter()
        with pytest.raises(BadLine) as refused:
            parse_line(garbage)
        assert time.perf_counter() - started < 0.5
        assert len(str(refused.value)) < 400  # the repr of its first 80 characters


def test_a_million_character_agent_is_kept() -> None:
    agent = "a" * 1_000_000
    assert parse_line(GOOD.rsplit(' "', 1)[0] + f' "{agent}"').user_agent == agent


def test_lines_read_from_bytes_that_are_not_utf8() -> None:
    # a server with escaping turned off (nginx's escape=none) writes the bytes as they came
    raw = GOOD.rsplit(' "', 1)[0].encode() + b' "caf\xe9 \xff\x00 \\x41"'
    for errors in ("surrogateescape", "replace"):
        line = parse_line(raw.decode("utf-8", errors))
        assert line.user_agent == "caf\ufffd \ufffd\x00 A"
    # no escape in the field, and bytes that are not UTF-8 in the request too
    raw = b'::1 - - [07/Dec/2026:16:44:51 +0530] "GET /caf\xe9 HTTP/1.1" 404 0 "\xff" "\xfe"'
    line = parse_line(raw.decode("utf-8", "surrogateescape"))
    assert (line.path, line.referrer, line.user_agent) == ("/caf\ufffd", "\ufffd", "\ufffd")


def test_nul_bytes_escaped_or_not_stay_in_the_agent() -> None:
    base = GOOD.rsplit(' "', 1)[0]
    assert parse_line(base + ' "a\\x00b"').user_agent == "a\x00b"
    assert parse_line(base + ' "a\x00b"').user_agent == "a\x00b"


@pytest.mark.parametrize(
    ("field", "agent"),
    [
        # escapes neither server writes are read as the character after the backslash, and a
        # lone backslash at the end is kept
        ("\\q\\N{DIGIT ONE}\\101\\u0041\\x4", "qN{DIGIT ONE}101u0041x4"),
        ("ends in \\\\", "ends in \\"),
        # Apache's escapes of control characters
        ("\\b\\n\\r\\t\\v\\f", "\b\n\r\t\v\f"),
    ],
)
def test_unusual_escapes(field: str, agent: str) -> None:
    assert parse_line(GOOD.rsplit(' "', 1)[0] + f' "{field}"').user_agent == agent


def test_a_quote_apache_escaped_at_the_end_of_a_field() -> None:
    # Apache's "\\" before the closing quote is a backslash, and "\"" inside a quote
    base = GOOD.split(' "-" "', 1)[0]
    line = parse_line(base + ' "ref\\\\" "agent \\" 200 1 \\"x\\""')
    assert (line.referrer, line.user_agent) == ("ref\\", 'agent " 200 1 "x"')


def test_only_fields_of_a_sensible_length_are_remembered() -> None:
    # agents and requests are remembered for speed; a flood of long distinct ones must not be
    cached = lines_module._cached_unescape
    before = cached.cache_info().currsize
    for number in range(10):
        agent = f"{number}" + "x" * lines_module.CACHED
        assert parse_line(GOOD.rsplit(' "', 1)[0] + f' "{agent}\\x22"').user_agent == agent + '"'
    assert cached.cache_info().currsize == before


@pytest.mark.parametrize(
    "agent",
    [
        "pip/26.3",
        'odd "quoted" \\ agent',
        "tab\there, bell\x07, DEL\x7f",
        "B\xc3\xbccher",  # UTF-8's bytes, as http.server reads a header (latin-1)
        None,
    ],
)
def test_a_line_written_as_nginx_would_reads_back(agent: str | None) -> None:
    at = datetime(2026, 12, 7, 10, 0, 1, tzinfo=UTC)
    line = format_line("::1", at, "GET /simple/foo%20bar/?x=1 HTTP/1.1", 200, 512, None, agent)
    assert line.isascii() and line.isprintable()
    read = parse_line(line)
    assert (read.host, read.time, read.method, read.path, read.query) == (
        "::1",
        at,
        "GET",
        "/simple/foo bar/",
        "x=1",
    )
    assert (read.status, read.size, read.referrer) == (200, 512, None)
    expected = agent.encode("latin-1").decode("utf-8") if agent is not None else None
    assert read.user_agent == expected
