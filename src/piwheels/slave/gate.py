"""The publish gate: a wheel is published only if its modules import where it was built.

The users of a build farm's wheels most often meet an import that fails because a shared
library is missing at run time: the build linked a library found only in its own build tree, or
one the builder has and a plain machine of its release does not. After a successful build, still
in the sandbox, each wheel is unpacked (without its dependencies) into a throwaway directory and
each of its top-level modules is imported in a fresh interpreter. A missing shared library, or an
import that crashes the interpreter, fails the gate: the build fails (cause import-failed) and
nothing is published. An import that fails for want of another distribution (the wheel's own
dependency, not installed here) or for any other reason passes, with a note in the log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

# Runs in the sandbox, under the build's interpreter: unpack, then import each top-level module
# in a child of its own (a crash must not end the gate). Prints one JSON line per module.
_GATE_SCRIPT = r"""
import json, os, subprocess, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
limit = 1 << 30
with zipfile.ZipFile(wheel) as archive:
    names = []
    total = 0
    for info in archive.infolist():
        name = info.filename
        parts = name.split("/")
        if ".." in parts or name.startswith("/"):
            continue
        if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
            dest = "/".join(parts[2:])
        elif parts[0].endswith(".data"):
            continue
        else:
            dest = name
        total += info.file_size
        if total > limit:
            print(json.dumps({"error": "the wheel unpacks to more than 1 GiB"}))
            sys.exit(0)
        path = os.path.join(target, dest)
        if name.endswith("/"):
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with archive.open(info) as source, open(path, "wb") as out:
            out.write(source.read())
        names.append(dest)
top = set()
for name in names:
    first = name.split("/")[0]
    if first.endswith(".dist-info"):
        continue
    if "/" in name:
        if os.path.exists(os.path.join(target, first, "__init__.py")) or name.endswith(".py"):
            top.add(first)
    elif name.endswith(".py"):
        top.add(name[:-3])
    elif ".so" in name or name.endswith(".pyd"):
        top.add(name.split(".")[0])
for module in sorted(m for m in top if m.isidentifier()):
    code = "import sys; sys.path.insert(0, sys.argv[1]); import " + module
    run = subprocess.run([sys.executable, "-c", code, target], capture_output=True, text=True,
                         timeout=120, cwd=target)
    lines = (run.stderr or "").strip().splitlines()
    print(json.dumps({"module": module, "status": run.returncode,
                      "error": lines[-1] if lines else ""}), flush=True)
"""

_MISSING_LIBRARY = re.compile(r"(?P<library>[\w.+-]+\.so[\w.]*): cannot open shared object file")
_MISSING_MODULE = re.compile(r"^(?:ModuleNotFoundError|ImportError): No module named '?([\w.]+)")


class GateResult(NamedTuple):
    passed: bool
    lines: list[str]  # for the build's log, one per module (and the verdict)


Run = Callable[[Sequence[str], float], tuple[int, str]]  # argv, timeout -> status, output


def check_wheel(wheel: Path, target: Path, python: str, run: Run, *, timeout: float) -> GateResult:
    """Import *wheel*'s top-level modules with *python*, through *run* (the sandbox)."""
    target.mkdir(parents=True, exist_ok=True)
    status, output = run([python, "-c", _GATE_SCRIPT, str(wheel), str(target)], timeout)
    lines: list[str] = []
    passed = True
    reports = []
    for line in output.splitlines():
        try:
            reports.append(json.loads(line))
        except ValueError:
            continue
    if status != 0 or not reports:
        tail = output.strip().splitlines()[-1:] or ["no output"]
        return GateResult(True, [f"publish gate: could not check {wheel.name}: {tail[0]}"])
    for report in reports:
        if "error" in report and "module" not in report:
            lines.append(f"publish gate: {wheel.name}: {report['error']}")
            continue
        module, code, error = report["module"], report["status"], report["error"]
        missing = _MISSING_LIBRARY.search(error)
        if code == 0:
            lines.append(f"publish gate: import {module}: ok")
        elif code < 0:
            passed = False
            lines.append(f"publish gate: import {module}: crashed the interpreter (signal {-code})")
        elif missing:
            passed = False
            lines.append(f"publish gate: import {module} failed: {error}")
        elif (other := _MISSING_MODULE.match(error)) and other.group(1).split(".")[0] != module:
            lines.append(
                f"publish gate: import {module} needs {other.group(1)}, another distribution "
                "(not installed here): passed"
            )
        else:
            lines.append(
                f"publish gate: import {module} failed, not for a missing library (passed): {error}"
            )
    if not passed:
        lines.append(f"publish gate: {wheel.name} is not published")
    return GateResult(passed, lines)
