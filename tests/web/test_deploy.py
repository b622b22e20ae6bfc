"""deploy/nginx.conf and deploy/apache.conf in a real nginx and a real Apache, over an output
directory the renderers wrote; every test runs against both.

Each config is the shipped file with its address and root pointed at a loopback port and a
temporary directory, inside a minimal main config of our own (pid, logs and temp files in the
test's directory). The tests of a server are skipped, with the reason, where it (or nginx's Perl
module) is missing; scripts/test installs them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from outputs import (
    BROWSER_ACCEPT,
    PIP_ACCEPT,
    SECRET,
    SITE_URL,
    UV_ACCEPT,
    Response,
    fetch,
    publish,
    wheel_metadata,
)

from piwheels.web.http_headers import HTML_V1_TYPE, JSON_TYPE, negotiate
from piwheels.web.layout import NOT_FOUND_PAGE, log_path
from piwheels.web.sitemap import NAMESPACE
from pypi_index import make_wheel

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class Deployed(NamedTuple):
    server: str  # "nginx" or "apache"
    url: str
    root: Path
    wheel: Path  # the original of a wheel in the index
    access_log: Path | None = None  # in the "combined" format piw-logger reads


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


def build_site(base: Path) -> Deployed:
    """An output directory under *base* with two projects, plus things never to be served."""
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
    return Deployed("", "", root, made[1])


def wait_listening(process: subprocess.Popen[bytes], port: int, what: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} did not start: {process.communicate(timeout=5)[1]!r}"
                ) from None
            time.sleep(0.05)
        else:
            return


def stop(process: subprocess.Popen[bytes], signum: int) -> None:
    """Stop a server we started, by its pid: *signum* first (graceful), then KILL."""
    process.send_signal(signum)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


def find_binary(name: str) -> str | None:
    # /usr/sbin is not on every PATH (a non-root shell's, say).
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin")


@contextlib.contextmanager
def run_nginx(base: Path) -> Iterator[Deployed]:
    binary = find_binary("nginx")
    if binary is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light; scripts/test does)")
    perl_module = nginx_modules_dir(binary) / "ngx_http_perl_module.so"
    if not perl_module.exists():
        pytest.skip(f"no {perl_module} (apt-get install libnginx-mod-http-perl)")
    site = build_site(base)
    work = base / "nginx-work"
    work.mkdir()
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(nginx_config(site.root, port, work, perl_module))
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
        wait_listening(process, port, "nginx")
        # nginx's default access log format is "combined"
        url = f"http://127.0.0.1:{port}"
        yield site._replace(server="nginx", url=url, access_log=work / "access.log")
        # Every test's requests went to nginx (and not, say, to a stray server on the port).
        assert "piwtest-pure" in (work / "access.log").read_text()
    finally:
        stop(process, signal.SIGQUIT)  # QUIT: nginx's graceful stop


APACHE_MODULES = ("mpm_event", "authz_core", "mime", "dir", "alias", "rewrite", "headers")
APACHE_MODULES_DIR = Path("/usr/lib/apache2/modules")


def apache_config(site_root: Path, port: int, work: Path) -> str:
    """The shipped virtual host, pointed at *site_root* and *port*, in a main config of ours."""
    site = (DEPLOY / "apache.conf").read_text()
    for old, new in (
        ("Define PIWHEELS_WWW /srv/piwheels/www", f"Define PIWHEELS_WWW {site_root}"),
        ("<VirtualHost *:80>", f"<VirtualHost 127.0.0.1:{port}>"),
    ):
        assert site.count(old) == 1, f"deploy/apache.conf no longer has {old!r}"
        site = site.replace(old, new)
    modules = "\n".join(
        f"LoadModule {name}_module {APACHE_MODULES_DIR / f'mod_{name}.so'}"
        for name in (*APACHE_MODULES, "filter", "deflate")
    )
    return f"""
ServerRoot {work}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {work / "httpd.pid"}
DefaultRuntimeDir {work}
Mutex file:{work} default
ErrorLog {work / "error.log"}
LogLevel warn
{modules}
LogFormat "%r %>s" plain
CustomLog {work / "access.log"} plain
# Debian's "combined", which piw-logger reads (README: Download statistics)
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog {work / "combined.log"} combined
User www-data
Group www-data
TypesConfig /dev/null
{site}
"""


@contextlib.contextmanager
def run_apache(base: Path) -> Iterator[Deployed]:
    binary = find_binary("apache2")
    if binary is None:
        pytest.skip("Apache is not installed (apt-get install apache2; scripts/test does)")
    missing = [
        name for name in APACHE_MODULES if not (APACHE_MODULES_DIR / f"mod_{name}.so").exists()
    ]
    if missing:
        pytest.skip(f"Apache modules missing from {APACHE_MODULES_DIR}: {missing}")
    # Apache's children run as www-data, which must be able to read the output: pytest's own
    # temporary directories are private to root.
    with tempfile.TemporaryDirectory(prefix="piwtest-apache-") as name:
        public = Path(name)
        public.chmod(0o755)
        site = build_site(public)
        work = base / "apache-work"
        work.mkdir()
        port = free_port()
        config = work / "httpd.conf"
        config.write_text(apache_config(site.root, port, work))
        check = subprocess.run(
            [binary, "-t", "-f", str(config)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stderr
        process = subprocess.Popen(
            [binary, "-f", str(config), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_listening(process, port, "Apache")
            url = f"http://127.0.0.1:{port}"
            yield site._replace(server="apache", url=url, access_log=work / "combined.log")
            assert "piwtest-pure" in (work / "access.log").read_text()
        finally:
            stop(process, signal.SIGWINCH)  # WINCH: Apache's graceful stop


@pytest.fixture(scope="module", params=["nginx", "apache"])
def deployed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    base = tmp_path_factory.mktemp(request.param)
    runner = run_nginx if request.param == "nginx" else run_apache
    with runner(base) as site:
        yield site


def get(site: Deployed, path: str, headers: dict[str, str] | None = None) -> Response:
    return fetch(site.url, path, headers)


def vary(response: Response) -> set[str]:
    return {
        value.strip().lower()
        for header in response.headers.get_all("Vary") or []
        for value in header.split(",")
    }


# Negotiation, in step with the demo server ---------------------------------------------------

# What real clients send, and a few written by hand. For each, the server must choose what
# piwheels.web.server.negotiate chooses (deploy/nginx.conf says where the two could differ).
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
def test_negotiates_as_the_demo_server(deployed: Deployed, path: str, accept: str | None) -> None:
    chosen = negotiate(accept)
    assert chosen is not None
    response = get(deployed, path, {"Accept": accept} if accept else {})
    assert response.status == 200
    assert response.headers["Content-Type"] == TYPES[chosen]
    filename = "index.json" if chosen == JSON_TYPE else "index.html"
    assert response.body == (deployed.root / path.strip("/") / filename).read_bytes()
    assert "accept" in vary(response)


@pytest.mark.parametrize("accept", ["application/json", f"{JSON_TYPE};q=0", "image/png"])
def test_406(deployed: Deployed, accept: str) -> None:
    assert negotiate(accept) is None
    response = get(deployed, "/simple/piwtest-pure/", {"Accept": accept})
    assert response.status == 406
    assert "accept" in vary(response)
    assert JSON_TYPE.encode() in response.body


def test_compresses_pages_but_keeps_vary(deployed: Deployed) -> None:
    response = get(deployed, "/simple/", {"Accept": PIP_ACCEPT, "Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.body) == (deployed.root / "simple/index.json").read_bytes()
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
def test_redirects(deployed: Deployed, path: str, location: str) -> None:
    response = get(deployed, path)
    assert response.status == 301
    # Apache makes the Location absolute, nginx (absolute_redirect off) does not.
    assert response.headers["Location"].removeprefix(deployed.url) == location


@pytest.mark.parametrize("path", ["/simple/index.html", "/simple/index.json"])
def test_root_index_files_are_not_project_names(deployed: Deployed, path: str) -> None:
    assert get(deployed, path).status == 200


# Files ----------------------------------------------------------------------------------


def test_wheel_range_and_types(deployed: Deployed) -> None:
    path = f"/simple/piwtest-pure/{deployed.wheel.name}"
    data = deployed.wheel.read_bytes()
    # Accept-Encoding too: compression must not take ranges away from wheels.
    part = get(deployed, path, {"Range": "bytes=-30", "Accept-Encoding": "gzip"})
    assert part.status == 206
    assert part.body == data[-30:]
    assert part.headers["Content-Range"] == f"bytes {len(data) - 30}-{len(data) - 1}/{len(data)}"
    assert "Content-Encoding" not in part.headers
    whole = get(deployed, path)
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert get(deployed, path, {"Range": f"bytes={len(data)}-"}).status == 416
    metadata = get(deployed, path + ".metadata")
    assert metadata.body == wheel_metadata(deployed.wheel)
    assert metadata.headers["Content-Type"] == "text/plain; charset=utf-8"
    index = get(deployed, "/simple/piwtest-pure/")
    assert index.headers["Cache-Control"] == "public, max-age=60"
    project = get(deployed, "/project/piwtest-pure/json/")
    assert project.headers["Content-Type"] == "application/json"


def test_logs(deployed: Deployed) -> None:
    url = "/" + log_path(1001).removesuffix(".gz")
    stored = (deployed.root / log_path(1001)).read_bytes()
    zipped = get(deployed, url, {"Accept-Encoding": "gzip, deflate"})
    assert zipped.status == 200
    assert zipped.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.body == stored
    assert "accept-encoding" in vary(zipped)
    plain = get(deployed, url)
    if deployed.server == "apache":
        # deploy/apache.conf says so: always gzip, as every browser asks for it.
        assert plain.body == stored
    else:
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
def test_serves_nothing_outside(deployed: Deployed, path: str) -> None:
    response = get(deployed, path)
    assert response.status in {400, 403, 404}
    assert SECRET not in response.body and b"half a page" not in response.body


# The rest of the site -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/nothing/here", None),
        ("/project/no-such-project/", BROWSER_ACCEPT),
        # pip and uv read the status: a project the index lacks must stay a 404
        ("/simple/no-such-project/", PIP_ACCEPT),
        ("/simple/no-such-project/", UV_ACCEPT),
        ("/simple/no-such-project/", None),
        ("/simple/piwtest-pure/no-such-1.0-py3-none-any.whl", None),
        ("/logs/0000/0000/1.txt", None),
        ("/simple/piwtest-pure/.index.html.x1y2.tmp", None),
    ],
)
def test_a_missing_path_gets_the_sites_404_page(
    deployed: Deployed, path: str, accept: str | None
) -> None:
    response = get(deployed, path, {"Accept": accept} if accept else {})
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.body == (deployed.root / NOT_FOUND_PAGE).read_bytes()


def test_the_sitemap_and_the_faq(deployed: Deployed) -> None:
    sitemap = get(deployed, "/sitemap.xml")
    assert sitemap.status == 200
    assert sitemap.headers["Content-Type"] == "application/xml"
    assert sitemap.body == (deployed.root / "sitemap.xml").read_bytes()
    locs = [loc.text for loc in ET.fromstring(sitemap.body).iter(f"{{{NAMESPACE}}}loc")]
    assert f"{SITE_URL}/project/piwtest-pure/" in locs
    zipped = get(deployed, "/sitemap.xml", {"Accept-Encoding": "gzip"})
    assert gzip.decompress(zipped.body) == sitemap.body
    faq = get(deployed, "/faq/")
    assert faq.status == 200
    assert faq.body == (deployed.root / "faq" / "index.html").read_bytes()


# A real installer -----------------------------------------------------------------------------


def test_pip_downloads_through_it(deployed: Deployed, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-cache-dir", "--no-input",
            "--index-url", f"{deployed.url}/simple/", "--dest", str(tmp_path / "got"),
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
        original = (deployed.root / "simple" / project / name).read_bytes()
        assert hashlib.sha256(data).digest() == hashlib.sha256(original).digest()
