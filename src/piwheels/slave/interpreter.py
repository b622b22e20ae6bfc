"""Ask a Python interpreter which wheels it builds: its version, ABI and platform tags and its pip.

The slave announces these tags in HELLO, and the master hands it only builds for that ABI, so they
must be the tags the interpreter itself reports, not ones derived from its version number here.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = ["Interpreter", "InterpreterError", "inspect_interpreter"]

# Runs inside the target interpreter, which may be far older than ours: no f-strings, no
# annotations, only the standard library and pip. It prints one JSON object on stdout.
_PROBE = r"""
import json, os, sys, sysconfig
import pip

def tags_from_pip():
    from pip._vendor.packaging import tags
    best = next(iter(tags.sys_tags()))
    # platform_tags() lists the manylinux/musllinux tags pip may install besides the plain tag
    # (linux_x86_64, linux_armv7l, ...) that a local build is labelled with; their order has
    # changed between pip releases, so pick the plain one rather than rely on its position.
    platforms = [p for p in tags.platform_tags()
                 if not p.startswith(("manylinux", "musllinux"))]
    return tags.interpreter_version(), best.abi, platforms[-1]

def tags_from_sysconfig():
    version = "%d%d" % sys.version_info[:2]
    soabi = sysconfig.get_config_var("SOABI") or ""
    parts = soabi.split("-")
    if len(parts) > 1 and parts[0] == "cpython":
        abi = "cp" + parts[1]
    else:
        abi = "cp" + version
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return version, abi, platform

try:
    found = tags_from_pip()
except ImportError:
    found = tags_from_sysconfig()

dirs = [os.path.dirname(os.path.realpath(sys.executable))]
for name in ("prefix", "base_prefix", "exec_prefix", "base_exec_prefix", "real_prefix"):
    if getattr(sys, name, None):
        dirs.append(getattr(sys, name))
dirs.extend(p for p in sys.path if os.path.isabs(p) and os.path.isdir(p))

json.dump({
    "version": "%d.%d.%d" % sys.version_info[:3],
    "py_version_tag": found[0],
    "abi_tag": found[1],
    "platform_tag": found[2],
    "pip_version": pip.__version__,
    "dirs": dirs,
}, sys.stdout)
"""

_PROBE_TIMEOUT = 60.0


class InterpreterError(Exception):
    """The given path is not a Python interpreter with pip that we can build with."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot build with {str(self.path)!r}: {self.reason}"


class Interpreter(NamedTuple):
    """A Python interpreter as the slave builds with it, and as HELLO describes it."""

    path: Path
    version: str  # e.g. "3.11.7"
    py_version_tag: str  # the spec's form: "311", not "cp311"
    abi_tag: str  # "cp311", or "cp37m" for 3.7 and older
    platform_tag: str  # what a local `pip wheel` labels its wheels with, e.g. "linux_x86_64"
    pip_version: str
    # Directories holding the interpreter, its standard library and site-packages: a sandbox has
    # to keep these readable even when it hides the home directory they often live in.
    prefixes: tuple[Path, ...] = ()


def inspect_interpreter(python: Path) -> Interpreter:
    """Run *python* once and return the tags it builds wheels for.

    Raises :exc:`InterpreterError` if *python* cannot be run, is not Python, or lacks pip.
    """
    # Not resolved: a venv's bin/python is a symlink whose target would lose the venv.
    python = python.absolute()
    data = _run_probe(python)
    fields = ("version", "py_version_tag", "abi_tag", "platform_tag", "pip_version")
    text = {name: data.get(name) for name in fields}
    dirs = data.get("dirs")
    if not all(isinstance(v, str) and v for v in text.values()) or not isinstance(dirs, list):
        raise InterpreterError(python, f"unexpected answer from the probe: {data!r}")
    return Interpreter(
        path=python,
        version=str(text["version"]),
        py_version_tag=str(text["py_version_tag"]),
        abi_tag=str(text["abi_tag"]),
        platform_tag=str(text["platform_tag"]),
        pip_version=str(text["pip_version"]),
        prefixes=_outermost(Path(d) for d in dirs if isinstance(d, str)),
    )


def _run_probe(python: Path) -> dict[str, object]:
    # -E and -s (rather than -I, which Python 2 lacks) so that neither our environment nor the
    # user's site-packages changes what the interpreter reports: builds run the same way.
    command = [str(python), "-E", "-s", "-c", _PROBE]
    try:
        proc = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            cwd="/",
            check=False,
        )
    except OSError as exc:
        raise InterpreterError(python, exc.strerror or str(exc)) from None
    except subprocess.TimeoutExpired:
        raise InterpreterError(python, f"no answer within {_PROBE_TIMEOUT:g}s") from None
    if proc.returncode != 0:
        reason = _last_line(proc.stderr) or f"exit status {proc.returncode}"
        raise InterpreterError(python, f"not a working Python with pip ({reason})")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise InterpreterError(python, f"unreadable probe output {proc.stdout[:200]!r}") from None
    if not isinstance(data, dict):
        raise InterpreterError(python, f"unexpected answer from the probe: {data!r}")
    return data


def _last_line(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


def _outermost(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Drop every path that lies inside another one, keeping the first-seen order."""
    unique = list(dict.fromkeys(paths))
    return tuple(p for p in unique if not any(p != q and p.is_relative_to(q) for q in unique))
