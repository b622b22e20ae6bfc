"""Running the real pip and uv in fresh virtualenvs, untouched by this machine's settings."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pypi_index import BUILD_DEPS_DIR


def client_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without pip's or uv's settings (the machine sets some)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        PIP_CONFIG_FILE=os.devnull,  # no config file at all, not even /etc's
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run(command: list[str | Path], env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}"
    return result.stdout


def new_venv(path: Path, env: dict[str, str], *, with_pip: bool) -> Path:
    # The interpreter this venv is based on is the one running the tests, so the cp311 wheels
    # built above are the ones that fit.
    run([sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), path], env)
    return path / "bin" / "python"


def uv_binary(directory: Path) -> Path:
    """The uv binary, taken out of the wheel scripts/fetch-build-deps caches (skips without it)."""
    found = sorted(BUILD_DEPS_DIR.glob("uv-*.whl"))
    if not found:
        pytest.skip(f"no uv wheel in {BUILD_DEPS_DIR}: run scripts/fetch-build-deps")
    target = directory / "uv"
    with zipfile.ZipFile(found[-1]) as wheel:
        [member] = [name for name in wheel.namelist() if name.endswith(".data/scripts/uv")]
        target.write_bytes(wheel.read(member))
    target.chmod(target.stat().st_mode | stat.S_IXUSR)
    return target
