"""The piwheels wheel carries its data files: migrations, templates, static files, monitor CSS.

An editable install finds them in the source tree whatever pyproject.toml says; a real install
(an operator's pip install) does not, so build the wheel as an operator's pip would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pypi_index import BUILD_DEPS_DIR

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "src" / "piwheels"


def test_wheel_carries_every_data_file(tmp_path: Path) -> None:
    if not any(BUILD_DEPS_DIR.glob("setuptools-*.whl")):
        pytest.skip(f"no setuptools in {BUILD_DEPS_DIR}: run scripts/fetch-build-deps")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
         "--find-links", str(BUILD_DEPS_DIR), "-w", str(tmp_path), str(REPO)],
        check=True, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    [wheel] = tmp_path.glob("piwheels-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    data = [
        path for pattern in ("db/migrations/*.sql", "web/templates/*", "web/static/*",
                             "monitor/*.tcss")
        for path in PACKAGE.glob(pattern)
    ]  # fmt: skip
    assert len(data) > 10
    missing = [str(p.relative_to(PACKAGE)) for p in data
               if f"piwheels/{p.relative_to(PACKAGE)}" not in names]  # fmt: skip
    assert not missing, f"not in the wheel: {missing}"
