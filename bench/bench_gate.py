"""What the publish gate costs, against the build it follows.

After each successful build the slave imports every top-level module of the wheel in the
sandbox (src/piwheels/slave/gate.py) before the wheel may be published. Measured here on the
test projects of tests/packages (a pure module, a C extension, an abi3 extension), each built
with pip in the same sandbox from its source directory (build dependencies from the offline
cache scripts/fetch-build-deps fills), then gated: the gate's time beside the build's own.

Run: ``python bench/bench_gate.py [--repeat R]``, or through ``bench/run`` (``gate.repeat``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness import Row, Sizes, standalone

from piwheels.slave.gate import check_wheel
from piwheels.slave.interpreter import Interpreter, inspect_interpreter
from piwheels.slave.sandbox import Sandbox, make_sandbox

REPO = Path(__file__).resolve().parents[1]
PACKAGES = REPO / "tests" / "packages"
BUILD_DEPS = REPO / ".cache" / "build-deps"
PROJECTS = ("piwtest-pure", "piwtest-cext", "piwtest-abi3")

SIZES: dict[str, int | float] = {"repeat": 3}
QUICK: dict[str, int | float] = {"repeat": 1}


def _python() -> Interpreter:
    # the interpreter a slave builds with: pyenv's 3.11 where there is one, else this one
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.11.*/bin/python"))
    return inspect_interpreter(pyenv[-1] if pyenv else Path(sys.executable))


def _source(project: str, work: Path) -> Path:
    """The project at version 1.0, in *work* (the build writes beside its sources)."""
    source = work / "src" / project
    shutil.copytree(PACKAGES / project, source)
    for path in source.rglob("*"):
        if path.is_file() and path.suffix in (".toml", ".py", ".cfg"):
            path.write_text(path.read_text().replace("0+template", "1.0"))
    return source


def _build(
    sandbox: Sandbox, python: Interpreter, source: Path, build_dir: Path
) -> tuple[float, Path]:
    out = build_dir / "out"
    out.mkdir(parents=True)
    command = [
        str(python.path), "-m", "pip", "wheel", "--no-deps", "--no-index",
        "--find-links", str(BUILD_DEPS), "--disable-pip-version-check",
        "-w", str(out), str(source),
    ]  # fmt: skip
    started = time.perf_counter()
    readable = [*python.prefixes, BUILD_DEPS]
    run = sandbox.run(command, build_dir=build_dir, timeout=600, readable=readable)
    took = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"building {source.name} failed:\n{run.output}")
    [wheel] = out.glob("*.whl")
    return took, wheel


def _gate(sandbox: Sandbox, python: Interpreter, wheel: Path, build_dir: Path) -> float:
    def run(argv: Sequence[str], timeout: float) -> tuple[int, str]:
        result = sandbox.run(argv, build_dir=build_dir, timeout=timeout, readable=python.prefixes)
        return result.returncode, result.output

    target = build_dir / "gate"
    started = time.perf_counter()
    gate = check_wheel(wheel, target, str(python.path), run, timeout=300)
    took = time.perf_counter() - started
    shutil.rmtree(target)
    if not gate.passed:
        raise RuntimeError(f"{wheel.name} failed the gate: {gate.lines}")
    return took


def run(sizes: Sizes) -> list[Row]:
    if not BUILD_DEPS.is_dir():
        raise RuntimeError(f"no build dependencies in {BUILD_DEPS}: run scripts/fetch-build-deps")
    sandbox = make_sandbox()
    python = _python()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        work = Path(tmp)
        for project in PROJECTS:
            builds, gates = [], []
            for attempt in range(int(sizes["repeat"])):
                build_dir = work / f"{project}-{attempt}"
                source = _source(project, build_dir)
                took, wheel = _build(sandbox, python, source, build_dir)
                builds.append(took)
                gates.append(_gate(sandbox, python, wheel, build_dir))
            rows.append(
                Row(
                    f"publish gate of {project}'s wheel",
                    min(gates),
                    min(builds),
                    "s",
                    f"its build ({sandbox.description.split(':')[0]}, pip, offline)",
                )
            )
    return rows


if __name__ == "__main__":
    standalone(__doc__ or "", SIZES, QUICK, run)
