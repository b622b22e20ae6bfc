"""piw-logger and the Hit Counter, end to end: real pip and uv download through real nginx and
Apache, piw-logger reads the servers' own access logs into a running master, and the project
pages, their JSON, the home page and the build queue show what was downloaded."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_deploy import Deployed, build_site, run_apache, run_nginx

from clients import client_env, new_venv, run, uv_binary
from farm import MasterThread, configure, rows, wait_for
from piwheels.cli import logger
from piwheels.master_support.config import MasterConfig
from piwheels.web.server import PipedAccessLog, serve
from pypi_index import LocalPyPI

PROJECTS = ["piwtest-pure", "piwtest-cext"]
DOWNLOADS = "SELECT package, kind, sum(hits)::int FROM daily_hits GROUP BY 1, 2 ORDER BY 1, 2"


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp311"], packages=PROJECTS)


@pytest.fixture
def master(config: MasterConfig) -> Iterator[MasterThread]:
    running = MasterThread(config).start()
    wait_for(
        lambda: len(rows(config.dsn, "SELECT 1 FROM packages")) == len(PROJECTS),
        what="the catalogue",
    )
    yield running
    running.stop()


@pytest.fixture(params=["nginx", "apache"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployed]:
    runner = run_nginx if request.param == "nginx" else run_apache
    base = tmp_path / request.param
    base.mkdir()
    with runner(base) as deployed:
        yield deployed


def visit(site: Deployed, tmp_path: Path) -> None:
    """What the farm's users do: pip downloads two wheels (looking both projects up), uv
    installs one, and a browser opens a project page and its JSON."""
    env = client_env(tmp_path)
    index = f"{site.url}/simple/"
    run(
        [
            sys.executable,
            *("-m", "pip", "download", "--no-cache-dir", "--index-url", index),
            *("--dest", tmp_path / "got", *PROJECTS),
        ],
        env,
    )
    venv = new_venv(tmp_path / "venv", env, with_pip=False)
    uv = uv_binary(tmp_path)
    run([uv, "pip", "install", "--python", venv, "--index-url", index, "piwtest-pure"], env)
    for path in ("/project/piwtest-pure/", "/project/piwtest-pure/json/index.json"):
        request = urllib.request.Request(site.url + path, headers={"User-Agent": "Mozilla/5.0"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


def read_logs(config: MasterConfig, *logs: Path) -> int:
    return logger.main([*map(str, logs), "--log-queue", config.log_queue, "--timeout", "30"])


def project_json(config: MasterConfig, project: str) -> dict[str, object]:
    page = Path(config.output_path) / "project" / project / "json" / "index.json"
    data: dict[str, object] = json.loads(page.read_text())
    return data


EXPECTED = [
    ("piwtest-cext", "download", 1),
    ("piwtest-cext", "search", 1),
    ("piwtest-pure", "download", 2),
    ("piwtest-pure", "json", 1),
    ("piwtest-pure", "project", 1),
    ("piwtest-pure", "search", 2),
]


def test_the_servers_logs_are_counted_on_the_pages(
    site: Deployed, master: MasterThread, config: MasterConfig, tmp_path: Path
) -> None:
    visit(site, tmp_path)
    assert site.access_log is not None
    # a server logs a request once it has answered it: the last may be a moment behind
    logged = site.access_log
    wait_for(lambda: "/json/index.json" in logged.read_text(), what="the last request logged")
    log = tmp_path / "access.log"
    shutil.copyfile(logged, log)
    with log.open("ab") as garbage:
        garbage.write(b"not a log line\n\x00\xff\xfe\n")
    assert read_logs(config, log) == 0
    assert rows(config.dsn, DOWNLOADS) == EXPECTED
    assert rows(config.dsn, "SELECT bad_lines FROM log_cursors") == [(2,)]
    installers = rows(
        config.dsn,
        "SELECT c.installer, c.python <> '', c.cpu <> '' FROM downloads "
        "JOIN clients c USING (client_id) ORDER BY 1",
    )
    assert installers == [("pip", True, True), ("pip", True, True), ("uv", True, True)]
    # the pages the Hit Counter asked for, and the home page at Big Brother's next round
    wait_for(
        lambda: (
            project_json(config, "piwtest-pure").get("downloads")
            == {"last_30_days": 2, "all_time": 2}
        ),
        what="piwtest-pure's JSON with its downloads",
    )
    page = (Path(config.output_path) / "project" / "piwtest-pure" / "index.html").read_text()
    assert "Downloads: 2 in the last 30 days, 2 in all." in page
    home = Path(config.output_path) / "index.html"
    wait_for(lambda: "3 in the last 30 days" in home.read_text(), what="the home page's figures")
    assert '<a href="/project/piwtest-pure/">piwtest-pure</a></td><td>2</td>' in home.read_text()
    # given again, the same log counts nothing twice
    assert read_logs(config, log) == 0
    assert rows(config.dsn, DOWNLOADS) == EXPECTED


def test_a_restart_mid_file_and_a_rotation_count_each_line_once(
    master: MasterThread, config: MasterConfig, tmp_path: Path
) -> None:
    # as nginx writes a pip download: the agent's quotes escaped
    download = (
        '192.0.2.{n} - - [07/Dec/2026:10:{n:02d}:00 +0000] "GET /simple/piwtest-pure/'
        'piwtest_pure-1.0-py3-none-any.whl HTTP/1.1" 200 1200 "-" "pip/24.0 '
        '{{\\x22installer\\x22:{{\\x22name\\x22:\\x22pip\\x22}},\\x22cpu\\x22:\\x22armv7l\\x22}}"\n'
    )
    lines = [download.format(n=n) for n in range(40)]
    log = tmp_path / "access.log"
    # piw-logger stopped half way through the log: the rest was written after
    log.write_text("".join(lines[:15]))
    assert read_logs(config, log) == 0
    log.write_text("".join(lines[:25]))
    assert read_logs(config, log) == 0
    # rotated and gzipped (logrotate's delaycompress aside), with a new log begun
    with gzip.open(tmp_path / "access.log.1.gz", "wt") as rotated:
        rotated.write("".join(lines[:30]))
    log.write_text("".join(lines[30:]))
    assert read_logs(config, tmp_path / "access.log.1.gz", log) == 0
    assert rows(config.dsn, "SELECT count(*)::int FROM downloads") == [(40,)]
    assert rows(config.dsn, DOWNLOADS) == [("piwtest-pure", "download", 40)]


def test_no_master_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "access.log"
    log.write_text('192.0.2.1 - - [07/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"\n')
    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o700)
    assert logger.main([str(log), "--log-queue", f"ipc://{sockets}/log"]) == 3
    assert "no master at" in capsys.readouterr().err


def test_a_piped_log_is_sent_as_it_comes(
    master: MasterThread, config: MasterConfig, tmp_path: Path
) -> None:
    """As Apache's piped log program: lines on standard input, sent without waiting for more
    once the pipe goes quiet, and all of them by the time it closes."""
    line = (
        '192.0.2.1 - - [07/Dec/2026:10:00:00 +0000] "GET /project/piwtest-cext/ HTTP/1.1" '
        '200 5120 "-" "Mozilla/5.0 (X11; Linux aarch64)"\n'
    )
    tool = subprocess.Popen(
        [sys.executable, "-m", "piwheels.cli.logger", "--log-queue", config.log_queue],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert tool.stdin is not None
    tool.stdin.write(line.encode() * 3)
    tool.stdin.flush()
    project_hits = "SELECT sum(hits)::int FROM daily_hits WHERE kind = 'project'"
    wait_for(lambda: rows(config.dsn, project_hits) == [(3,)], what="the first lines, sent")
    tool.stdin.write(line.encode() * 2 + b"garbage\n")
    tool.stdin.close()
    assert tool.wait(60) == 0, tool.communicate()[0]
    assert rows(config.dsn, project_hits) == [(5,)]
    assert rows(config.dsn, "SELECT lines, bad_lines FROM log_cursors") == [(6, 1)]


def test_the_demo_servers_own_log_is_piped_to_piw_logger(
    master: MasterThread, config: MasterConfig, tmp_path: Path
) -> None:
    """scripts/farm's server writes its access log as nginx would, piped to piw-logger as
    Apache's is: what pip, uv and a browser fetch from it is counted."""
    access_log = PipedAccessLog(
        [sys.executable, "-m", "piwheels.cli.logger", "--log-queue", config.log_queue]
    )
    (tmp_path / "site").mkdir()
    site = build_site(tmp_path / "site")  # not the master's own output, which it rewrites
    try:
        with serve(site.root, access_log=access_log) as server:
            access_log.start()
            visit(site._replace(url=server.url), tmp_path)
            assert server.wait_idle()
    finally:
        access_log.close()
    assert access_log.process is not None
    assert access_log.process.returncode == 0
    assert rows(config.dsn, DOWNLOADS) == EXPECTED
    assert rows(config.dsn, "SELECT bad_lines FROM log_cursors") == [(0,)]


def test_a_piped_logger_ends_with_its_pipe_when_the_master_has_gone(
    config: MasterConfig, tmp_path: Path
) -> None:
    """The server stopped (end of file) after the master did: the last lines are tried for
    --timeout, then given up with an error, rather than for ever."""
    running = MasterThread(config).start()
    wait_for(lambda: Path(config.log_queue.removeprefix("ipc://")).exists(), what="the log queue")
    command = [sys.executable, "-m", "piwheels.cli.logger", "--log-queue", config.log_queue]
    tool = subprocess.Popen(
        [*command, "--timeout", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert tool.stdin is not None
        line = b'192.0.2.1 - - [07/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"\n'
        tool.stdin.write(line)
        tool.stdin.flush()
        wait_for(lambda: rows(config.dsn, "SELECT 1 FROM log_cursors"), what="the first line")
        running.stop()
        tool.stdin.write(line)
        tool.stdin.close()
        tool.wait(60)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
    assert tool.stdout is not None
    said = tool.stdout.read().decode()
    assert tool.returncode != 0
    assert "within 2s" in said
