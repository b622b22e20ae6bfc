"""deploy/nginx.conf in a real nginx, over an output directory the renderers wrote.

The config is the shipped file with its `listen` and `root` lines pointed at a loopback port and a
temporary directory, inside a minimal main config of our own (pid, logs and temp files in the
test's directory). Each test is skipped, with the reason, where nginx or its Perl module is
missing (scripts/test installs them).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from outputs import (
    BROWSER_ACCEPT,
    PIP_ACCEPT,
    SECRET,
    UV_ACCEPT,
    Response,
    fetch,
    publish,
    wheel_metadata,
)

from piwheels.web.model import log_path
from piwheels.web.server import HTML_V1_TYPE, JSON_TYPE, negotiate
from pypi_index import make_wheel

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class Deployed(NamedTuple):
    url: str
    root: Path
    wheel: Path  # the original of a wheel in the index


def nginx_modules_dir(nginx: str) -> Path:
    result = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False)
    found = re.search(r"--modules-path=(\S+)", result.stderr)
    return Path(found.group(1) if found else "/usr/lib/nginx/modules")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_config(root: Path, port: int, work: Path, perl_module: Path) -> str:
    """The shipped server config, pointed at *root* and *port*, in a main config of our own."""
    site = (DEPLOY / "nginx.conf").read_text()
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("root /srv/piwheels/www;", f"root {root};"),
    ):
        assert site.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
        site = site.replace(old, new)
    temp = "\n".join(
        f"    {kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
load_module {perl_module};
# As root the workers would run as nobody, who cannot enter pytest's private temp directories.
user root;
worker_processes 1;
daemon off;
pid {work / "nginx.pid"};
error_log {work / "error.log"} info;
events {{
    worker_connections 64;
}}
http {{
    access_log {work / "access.log"};
{temp}
{site}
}}
"""


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; scripts/test does)")
    perl_module = nginx_modules_dir(binary) / "ngx_http_perl_module.so"
    if not perl_module.exists():
        pytest.skip(f"no {perl_module} (apt-get install libnginx-mod-http-perl)")
    base = tmp_path_factory.mktemp("nginx")
    root = base / "www"
    wheels = base / "wheels"
    made = [
        make_wheel("piwtest-pure", "1.0", wheels),
        make_wheel("piwtest-pure", "1.1", wheels),
        make_wheel("piwtest-cext", "1.1", wheels, tag="cp311-cp311-linux_x86_64"),
    ]
    publish(root, made)
    (base / "secret.txt").write_bytes(SECRET)
    (root / "simple" / "piwtest-pure" / "escape.whl").symlink_to(base / "secret.txt")
    (root / "simple" / "piwtest-pure" / ".index.html.x1y2.tmp").write_text("half a page")
    work = base / "nginx-work"
    work.mkdir()
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(nginx_config(root, port, work, perl_module))
    check = subprocess.run(
        [binary, "-t", "-p", str(work), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [binary, "-p", str(work), "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"nginx did not start: {process.communicate(timeout=5)[1]!r}"
                    ) from None
                time.sleep(0.05)
        yield Deployed(f"http://127.0.0.1:{port}", root, made[1])
        # Every test's requests went to nginx (and not, say, to a stray server on the port).
        assert "piwtest-pure" in (work / "access.log").read_text()
    finally:
        # QUIT: a graceful stop of the master and its worker, by the master's pid.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def get(site: Deployed, path: str, headers: dict[str, str] | None = None) -> Response:
    return fetch(site.url, path, headers)


def vary(response: Response) -> set[str]:
    return {
        value.strip().lower()
        for header in response.headers.get_all("Vary") or []
        for value in header.split(",")
    }


# Negotiation, in step with the demo server ---------------------------------------------------

# What real clients send, and a few written by hand. For each, nginx must choose what
# piwheels.web.server.negotiate chooses (nginx.conf says where the two could differ).
ACCEPTS = [
    None,
    "*/*",
    PIP_ACCEPT,
    UV_ACCEPT,
    BROWSER_ACCEPT,
    "text/html",
    HTML_V1_TYPE,
    JSON_TYPE,
    f"{JSON_TYPE};q=0.9, text/html;q=0.1",
    f"{JSON_TYPE};q=0, */*",
    f"text/html;q=0, {JSON_TYPE}",
    f"{HTML_V1_TYPE}, {JSON_TYPE};q=0.5",
    "application/*",
    "TEXT/HTML; Q=0.3",
    # poetry / pdm style: JSON, then both HTML types.
    f"{JSON_TYPE}, {HTML_V1_TYPE};q=0.9, text/html;q=0.8",
]
TYPES = {
    "text/html": "text/html; charset=utf-8",
    HTML_V1_TYPE: HTML_V1_TYPE,
    JSON_TYPE: JSON_TYPE,
}


@pytest.mark.parametrize("path", ["/simple/", "/simple/piwtest-pure/"])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_nginx_negotiates_as_the_demo_server(
    nginx: Deployed, path: str, accept: str | None
) -> None:
    chosen = negotiate(accept)
    assert chosen is not None
    response = get(nginx, path, {"Accept": accept} if accept else {})
    assert response.status == 200
    assert response.headers["Content-Type"] == TYPES[chosen]
    filename = "index.json" if chosen == JSON_TYPE else "index.html"
    assert response.body == (nginx.root / path.strip("/") / filename).read_bytes()
    assert "accept" in vary(response)


@pytest.mark.parametrize("accept", ["application/json", f"{JSON_TYPE};q=0", "image/png"])
def test_nginx_406(nginx: Deployed, accept: str) -> None:
    assert negotiate(accept) is None
    response = get(nginx, "/simple/piwtest-pure/", {"Accept": accept})
    assert response.status == 406
    assert "accept" in vary(response)
    assert JSON_TYPE.encode() in response.body


def test_nginx_compresses_pages_but_keeps_vary(nginx: Deployed) -> None:
    response = get(nginx, "/simple/", {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.body) == (nginx.root / "simple/index.json").read_bytes()
    assert {"accept", "accept-encoding"} <= vary(response)


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple/PiwTest_Pure/", "/simple/piwtest-pure/"),
        ("/simple/piwtest..pure/", "/simple/piwtest-pure/"),
        ("/simple/PIWTEST-PURE/?x=1", "/simple/piwtest-pure/?x=1"),
        ("/project/Piwtest.Pure/json/", "/project/piwtest-pure/json/"),
        ("/simple/piwtest-pure", "/simple/piwtest-pure/"),
    ],
)
def test_nginx_redirects(nginx: Deployed, path: str, location: str) -> None:
    response = get(nginx, path)
    assert (response.status, response.headers["Location"]) == (301, location)


@pytest.mark.parametrize("path", ["/simple/index.html", "/simple/index.json"])
def test_nginx_root_index_files_are_not_project_names(nginx: Deployed, path: str) -> None:
    assert get(nginx, path).status == 200


# Files ----------------------------------------------------------------------------------


def test_nginx_wheel_range_and_types(nginx: Deployed) -> None:
    path = f"/simple/piwtest-pure/{nginx.wheel.name}"
    data = nginx.wheel.read_bytes()
    # Accept-Encoding too: compression must not take ranges away from wheels.
    part = get(nginx, path, {"Range": "bytes=-30", "Accept-Encoding": "gzip"})
    assert part.status == 206
    assert part.body == data[-30:]
    assert part.headers["Content-Range"] == f"bytes {len(data) - 30}-{len(data) - 1}/{len(data)}"
    assert "Content-Encoding" not in part.headers
    whole = get(nginx, path)
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert get(nginx, path, {"Range": f"bytes={len(data)}-"}).status == 416
    metadata = get(nginx, path + ".metadata")
    assert metadata.body == wheel_metadata(nginx.wheel)
    assert metadata.headers["Content-Type"] == "text/plain; charset=utf-8"
    index = get(nginx, "/simple/piwtest-pure/")
    assert index.headers["Cache-Control"] == "public, max-age=60"
    project = get(nginx, "/project/piwtest-pure/json/")
    assert project.headers["Content-Type"] == "application/json"


def test_nginx_logs(nginx: Deployed) -> None:
    url = "/" + log_path(1001).removesuffix(".gz")
    stored = (nginx.root / log_path(1001)).read_bytes()
    zipped = get(nginx, url, {"Accept-Encoding": "gzip, deflate"})
    assert zipped.status == 200
    assert zipped.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.body == stored
    assert "accept-encoding" in vary(zipped)
    plain = get(nginx, url)
    assert "Content-Encoding" not in plain.headers
    assert plain.body == gzip.decompress(stored)


@pytest.mark.parametrize(
    "path",
    [
        "/simple/piwtest-pure/escape.whl",
        "/simple/%2e%2e/%2e%2e/secret.txt",
        "/../secret.txt",
        "/simple/piwtest-pure/.index.html.x1y2.tmp",
        "/simple/piwtest-pure/index.html%00.whl",
    ],
)
def test_nginx_serves_nothing_outside(nginx: Deployed, path: str) -> None:
    response = get(nginx, path)
    assert response.status in {400, 403, 404}
    assert SECRET not in response.body and b"half a page" not in response.body


# A real installer -----------------------------------------------------------------------------


def test_pip_downloads_through_nginx(nginx: Deployed, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-cache-dir", "--no-input",
            "--index-url", f"{nginx.url}/simple/", "--dest", str(tmp_path / "got"),
            "PiwTest_Pure", "piwtest-cext",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    got = {path.name: path.read_bytes() for path in (tmp_path / "got").iterdir()}
    # The newest of each (the cext wheel by its tag), hashes checked by pip against the index
    # and here against the originals.
    assert sorted(got) == [
        "piwtest_cext-1.1-cp311-cp311-linux_x86_64.whl",
        "piwtest_pure-1.1-py3-none-any.whl",
    ]
    for name, data in got.items():
        project = name.split("-")[0].replace("_", "-")
        original = (nginx.root / "simple" / project / name).read_bytes()
        assert hashlib.sha256(data).digest() == hashlib.sha256(original).digest()
