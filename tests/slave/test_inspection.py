"""What a built wheel needs of the system: the Debian packages of the libraries it links."""

from __future__ import annotations

import shutil
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from piwheels.records.builds import Dependency
from piwheels.slave.inspection import apt_dependencies
from piwheels.slave.interpreter import Interpreter
from piwheels.slave.sandbox import make_sandbox


@pytest.mark.skipif(not shutil.which("dpkg"), reason="apt dependencies need dpkg (Debian)")
@pytest.mark.skipif(
    not getattr(zlib, "__file__", "").endswith(".so"), reason="zlib is built into this Python"
)
@pytest.mark.parametrize("bundled", [False, True])
def test_apt_dependencies(host_python: Interpreter, tmp_path: Path, bundled: bool) -> None:
    # The interpreter's own zlib module links to the system's libz and libc: a real extension
    # with known system dependencies, packed into a wheel. A wheel that bundles its own libz
    # (as auditwheel does) must not report zlib1g.
    module = Path(zlib.__file__)
    wheel = tmp_path / "piwtest_sys-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(module, f"piwtest_sys/{module.name}")
        if bundled:
            archive.write(module, "piwtest_sys.libs/libz.so.1")
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    sandbox = make_sandbox()

    def ldd(argv: Sequence[str]) -> str:
        return sandbox.run(argv, build_dir=build_dir, timeout=30).output

    found = apt_dependencies(wheel, build_dir / "scan", ldd)
    expected = {"libc6"} if bundled else {"zlib1g", "libc6"}
    assert found == {Dependency("apt", package) for package in expected}
