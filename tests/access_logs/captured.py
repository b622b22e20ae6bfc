"""What real clients and real servers wrote, for the tests to read.

The agents were captured on 2026-12-07 (Debian 12, x86_64) by a bare http.server subclass on
127.0.0.1 that stored each request's User-Agent header, as
``pip download --no-cache-dir --index-url http://127.0.0.1:PORT/simple/ piwtest-pure`` with pip
26.3 and pip 23.2.1 (CPython 3.11.7) and ``uv pip install --no-cache --index-url ...`` with uv
0.13.9 (Debian's CPython 3.11.2) asked it for a project. The same clients' requests to nginx and
Apache are in logs/ (see logs/README.md), where these are the agents the log lines decode to.
"""

from __future__ import annotations

from pathlib import Path

LOGS = Path(__file__).parent / "logs"

PIP_26_3 = (
    'pip/26.3 {"ci":null,"cpu":"x86_64","distro":{"id":"bookworm","libc":{"lib":"glibc",'
    '"version":"2.36"},"name":"Debian GNU/Linux","version":"12"},"implementation":{"name":'
    '"CPython","version":"3.11.7"},"installer":{"name":"pip","version":"26.3"},'
    '"openssl_version":"OpenSSL 3.0.19 27 Jan 2026","python":"3.11.7","rustc_version":"1.95.0",'
    '"setuptools_version":"65.5.0","system":{"name":"Linux","release":"6.18.44-fc-v1300"}}'
)
PIP_23_2_1 = (
    'pip/23.2.1 {"ci":null,"cpu":"x86_64","distro":{"id":"bookworm","libc":{"lib":"glibc",'
    '"version":"2.36"},"name":"Debian GNU/Linux","version":"12"},"implementation":{"name":'
    '"CPython","version":"3.11.7"},"installer":{"name":"pip","version":"23.2.1"},'
    '"openssl_version":"OpenSSL 3.0.19 27 Jan 2026","python":"3.11.7","rustc_version":"1.95.0",'
    '"setuptools_version":"65.5.0","system":{"name":"Linux","release":"6.18.44-fc-v1300"}}'
)
UV_0_13_9 = (
    'uv/0.13.9 {"installer":{"name":"uv","version":"0.13.9","subcommand":["pip","install"]},'
    '"python":"3.11.2","implementation":{"name":"CPython","version":"3.11.2"},"distro":{"name":'
    '"Debian GNU/Linux","version":"12","id":"bookworm","libc":{"lib":"glibc","version":"2.36"}},'
    '"system":{"name":"Linux","release":"6.18.44-fc-v1300"},"cpu":"x86_64",'
    '"openssl_version":null,"setuptools_version":null,"rustc_version":null,"ci":null}'
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def log_lines(name: str) -> list[str]:
    """The lines of logs/*name*, without their newlines."""
    return (LOGS / name).read_text(encoding="ascii").splitlines()
