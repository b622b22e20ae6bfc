"""The ``site`` the server's tests share: see served_site.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from outputs import SECRET, publish
from served_site import Site

from piwheels.web.server import serve
from pypi_index import make_wheel


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("site")
    wheels = base / "wheels"
    made = [
        make_wheel("piwtest-pure", "1.0", wheels),
        make_wheel("piwtest-pure", "1.1", wheels),
        make_wheel("piwtest-cext", "1.0", wheels, tag="cp311-cp311-linux_x86_64"),
    ]
    root = base / "www"
    publish(root, made)
    outside = base / "secret.txt"
    outside.write_bytes(SECRET)
    project = root / "simple" / "piwtest-pure"
    (project / "escape.whl").symlink_to(outside)
    (root / "simple" / "outside").symlink_to(base)  # a directory leading out
    (project / "inside.whl").symlink_to(project / made[0].name)  # stays inside: allowed
    (project / ".index.html.x1y2.tmp").write_text("half a page")
    os.mkfifo(project / "pipe.whl")
    with serve(root) as server:
        yield Site(server, root, made[0])
