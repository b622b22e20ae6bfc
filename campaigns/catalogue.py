"""The chaos campaign's catalogue: small real projects written on the spot, for LocalPyPI.

Three kinds, so that both kinds of wheel are made and the farm's two ABIs share the work (one
cp39 slave, two cp311 slaves: 24 builds on cp39, 40 on cp311):

* ``cext``: a C extension, one wheel for each ABI (cp39, then cp311);
* ``pure``: pure Python, one py3-none-any wheel, built on the lowest ABI and serving both;
* ``py311``: pure Python for 3.10 and later, built once, on cp311 (cp39 is skipped).

Some projects sleep in ``build_py`` (as tests/packages/piwtest-slow does), for longer in a longer
campaign, so that the farm builds for as long as faults land and a slave killed at random is
often mid-build; some put 16 MB of random bytes in their wheel, so that a slave killed as it
starts sending is often mid-transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from campaigns.farm import PACKAGES_DIR

VERSIONS = ("1.0", "1.1", "1.2", "1.3")
# (kind, suffix, sleep in build_py as a share of the slow sleep, MB of random bytes in the
# wheel): a C extension's own build carries no data file.
FLAVOURS = (
    ("cext", "a", 0, 0),
    ("cext", "b", 1 / 6, 0),
    ("cext", "c", 1 / 6, 0),
    ("cext", "slow", 1, 0),
    ("pure", "big", 0, 16),
    ("pure", "slow", 1, 0),
    ("py311", "a", 0, 0),
    ("py311", "b", 1 / 6, 0),
    ("py311", "big", 0, 16),
    ("py311", "c", 1 / 6, 0),
    ("py311", "slow", 1, 0),
    ("py311", "slower", 1, 0),
)
# The C source of the tests' own extension, renamed for each project.
C_SOURCE = (PACKAGES_DIR / "piwtest-cext" / "piwtest_cext.c").read_text()

SETUP = '''"""Written by campaigns/catalogue.py: sleep, or write bytes, while the wheel is built."""

import os
import time

from setuptools import setup
from setuptools.command.build_py import build_py

BUILD_SECONDS = {seconds}
DATA_BYTES = {size}


class BuildPy(build_py):
    def run(self) -> None:
        time.sleep(BUILD_SECONDS)
        super().run()
        if DATA_BYTES:
            # random, so that the wheel's deflate cannot make it small
            with open(os.path.join(self.build_lib, "{module}_data.bin"), "wb") as out:
                out.write(os.urandom(DATA_BYTES))


setup(cmdclass={{"build_py": BuildPy}}{extension})
'''

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0+template"
description = "piwheels chaos campaign: {kind}"
requires-python = "{requires}"

[tool.setuptools]
py-modules = [{modules}]
"""


@dataclass(frozen=True)
class Project:
    name: str
    kind: str
    build_seconds: int
    data_mb: int

    @property
    def module(self) -> str:
        return canonicalize_name(self.name).replace("-", "_")

    def abis(self, farm_abis: tuple[str, ...]) -> tuple[str, ...]:
        """The ABIs each version must end up with a wheel for (py311: not cp39)."""
        return tuple(abi for abi in farm_abis if self.kind != "py311" or abi != "cp39")

    def wheels(self) -> int:
        """How many wheels each version should have: one an ABI, or one for all."""
        return 2 if self.kind == "cext" else 1

    def write(self, root: Path) -> None:
        """The project's sources under *root*/<name>, at SdistFactory's template version."""
        source = root / self.name
        source.mkdir(parents=True)
        cext = self.kind == "cext"
        requires = ">=3.10" if self.kind == "py311" else ">=3.8"
        modules = "" if cext else f'"{self.module}"'
        (source / "pyproject.toml").write_text(
            PYPROJECT.format(name=self.name, kind=self.kind, requires=requires, modules=modules)
        )
        extension = ""
        if cext:
            extension = f', ext_modules=[Extension("{self.module}", ["{self.module}.c"])]'
            (source / f"{self.module}.c").write_text(C_SOURCE.replace("piwtest_cext", self.module))
        else:
            (source / f"{self.module}.py").write_text('__version__ = "0+template"\n')
        setup = SETUP.format(
            seconds=self.build_seconds,
            size=self.data_mb << 20,
            module=self.module,
            extension=extension,
        )
        if cext:
            setup = setup.replace("import setup", "import Extension, setup")
        (source / "setup.py").write_text(setup)


def projects(slow_seconds: int = 0) -> list[Project]:
    return [
        Project(f"chaos-{kind}-{suffix}", kind, round(share * slow_seconds), size)
        for kind, suffix, share, size in FLAVOURS
    ]


def write_catalogue(root: Path, slow_seconds: int) -> list[tuple[str, str, str | None]]:
    """Write every project under *root*; the (project, version, yank reason) LocalPyPI serves.

    4 versions of 12 projects: 64 wheels on cp39 and cp311.
    """
    entries: list[tuple[str, str, str | None]] = []
    for project in projects(slow_seconds):
        project.write(root)
        entries += [(project.name, version, None) for version in VERSIONS]
    return entries
