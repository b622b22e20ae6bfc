"""The output directory the server's tests read, and how they read it: through a real server.

It holds what the renderers write for two projects, plus the hostile things a static server must
never hand out: symlinks leading out, a FIFO, a writer's temporary file. tests/web/conftest.py
serves it as the ``site`` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from outputs import Response
from outputs import fetch as fetch_url

from piwheels.web.server import OutputServer


class Site(NamedTuple):
    server: OutputServer
    root: Path
    wheel: Path  # a wheel in the index (the original, outside it)


def fetch(
    server: OutputServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> Response:
    return fetch_url(server.url, path, headers, method)
