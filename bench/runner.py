"""``bench/run``: run every benchmark module in bench/, print one table, write BENCHMARKS.md.

Modules are the ``bench_<name>.py`` files that expose ``run`` (see bench/README.md). Each runs
in a child process of its own, so that one which crashes, or leaves memory and threads behind,
cannot spoil the figures of the next; the child hands its rows back as JSON in a file, and its
own output (progress, notes) goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import HEADER, Row, Size, cells, markdown_table, number, text_table

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


@dataclass
class Outcome:
    """What one module's run produced."""

    name: str
    sizes: dict[str, Size] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def discover(bench_dir: Path = BENCH_DIR) -> list[str]:
    """The names of the benchmark modules (``bench_codec.py`` -> ``codec``), sorted."""
    return sorted(path.stem.removeprefix("bench_") for path in bench_dir.glob("bench_*.py"))


def load(name: str) -> ModuleType:
    return importlib.import_module(f"bench_{name}")


def effective_sizes(module: ModuleType, quick: bool, overrides: dict[str, str]) -> dict[str, Size]:
    """The module's defaults, then its QUICK sizes if asked, then the command line's."""
    defaults: dict[str, Size] = dict(getattr(module, "SIZES", {}))
    sizes = defaults | (dict(getattr(module, "QUICK", {})) if quick else {})
    for key, text in overrides.items():
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise SystemExit(f"{module.__name__}: no size {key!r} (known: {known})")
        sizes[key] = type(defaults[key])(text)
    return sizes


# -- the child: one module ---------------------------------------------------------------------


def child(name: str, quick: bool, overrides: dict[str, str], out: Path) -> int:
    """Run one module and write ``{"sizes": ..., "rows": ..., "error": ...}`` to *out*."""
    result: dict[str, Any] = {"sizes": {}, "rows": [], "error": ""}
    try:
        module = load(name)
        run = getattr(module, "run", None)
        if run is None:
            result["error"] = "skipped: the module has no run(sizes) (see bench/README.md)"
        else:
            result["sizes"] = sizes = effective_sizes(module, quick, overrides)
            result["rows"] = [row.to_json() for row in run(sizes)]
    except Exception as exc:  # whatever went wrong, the other modules still run and report
        traceback.print_exc()
        result["error"] = f"failed: {type(exc).__name__}: {exc}"
    out.write_text(json.dumps(result))
    return 1 if result["error"].startswith("failed") else 0


def run_module(name: str, quick: bool, overrides: dict[str, str]) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as work:
        out = Path(work) / "rows.json"
        command = [sys.executable, str(Path(__file__)), "--child", name, "--rows-to", str(out)]
        command += ["--quick"] if quick else []
        for key, value in overrides.items():
            command += ["--size", f"{name}.{key}={value}"]
        started = time.monotonic()
        # The child's stdout (the module's notes) goes to our stderr: stdout is the table.
        process = subprocess.run(command, stdout=sys.stderr, check=False, cwd=ROOT)
        seconds = time.monotonic() - started
        if not out.exists():
            return Outcome(name, error=f"failed: exit status {process.returncode}", seconds=seconds)
        data = json.loads(out.read_text())
    rows = [Row.from_json(row) for row in data["rows"]]
    return Outcome(name, data["sizes"], rows, data["error"], seconds)


# -- the machine -------------------------------------------------------------------------------


def _first_match(path: str, pattern: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def _command(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def postgres_version() -> str:
    # The server the benchmarks (and the embedded master) would run: the embedded module's pick.
    from piwheels.db.embedded.binaries import find_bin_dirs  # noqa: PLC0415 (only the parent needs it)

    dirs = find_bin_dirs()
    if not dirs:
        return "not found"
    version = _command(str(dirs[0] / "postgres"), "--version")
    return f"{version or 'unknown'} ({dirs[0]})"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on; ratios travel between machines, figures do not."""
    import zmq  # noqa: PLC0415

    uname = platform.uname()
    memory_kib = _first_match("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    commit = _command("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = _command("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")
    # cbor2's speed is the subject of seed 000: say whether its C extension is the one in use.
    cbor_c = "C extension" if importlib.util.find_spec("cbor2._cbor2") else "pure Python"
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("uname", " ".join(uname)),
        ("CPU", _first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or uname.processor),
        ("cores", f"{cores} ({usable} usable by this process)"),
        ("memory", f"{int(memory_kib) / 2**20:.1f} GiB" if memory_kib else "unknown"),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("Python", f"{sys.version.split()[0]} ({platform.python_implementation()})"),
        ("PostgreSQL", postgres_version()),
        ("cbor2", f"{importlib.metadata.version('cbor2')} ({cbor_c})"),
        ("pyzmq / libzmq", f"{zmq.__version__} / {zmq.zmq_version()}"),
        ("commit", f"{commit}{' (with uncommitted changes)' if dirty else ''}" or "unknown"),
    ]


# -- the report --------------------------------------------------------------------------------


def table_lines(outcomes: list[Outcome]) -> list[list[str]]:
    lines = [HEADER]
    for outcome in outcomes:
        lines += [cells(row, f"{outcome.name}: ") for row in outcome.rows]
        if outcome.error:
            lines.append([f"{outcome.name}: {outcome.error}", "", "", "", "", ""])
    return lines


def markdown(outcomes: list[Outcome], facts: list[tuple[str, str]], command: str) -> str:
    sizes = "\n".join(
        f"- **{o.name}** ({o.seconds:.0f} s): "
        + (", ".join(f"{key}={number(value)}" for key, value in o.sizes.items()) or "-")
        for o in outcomes
    )
    return f"""# Benchmarks

Written by `{command}`. Each figure stands beside a reference measured in the same run, on the
same data and the same machine; the ratio between them is what to compare across machines and
runs (the machine below is shared and noisy, so the figures alone are not). How each module
measures is described in its docstring (`bench/bench_<name>.py`).

## Results

{markdown_table(table_lines(outcomes))}

## Sizes (and each module's wall time)

{sizes}

## Machine

{markdown_table([["", ""], *([key, value] for key, value in facts)])}
"""


def parse_sizes(items: list[str]) -> dict[str, dict[str, str]]:
    """``["codec.messages=100", ...]`` -> ``{"codec": {"messages": "100"}}``."""
    found: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        name, dot, key = target.partition(".")
        if not (sep and dot and name and key):
            raise SystemExit(f"--size {item!r}: expected MODULE.SIZE=VALUE, e.g. codec.files=10")
        found.setdefault(name, {})[key.replace("-", "_")] = value
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run", description="Run every benchmark in bench/ and write BENCHMARKS.md."
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only these (repeatable)"
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="MODULE.SIZE=VALUE",
        help="override one size, e.g. --size juggler.transfer_mb=200 (repeatable)",
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the report"
    )
    parser.add_argument("--no-output", action="store_true", help="print the table only")
    parser.add_argument("--list", action="store_true", help="list the modules and their sizes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = parse_sizes(args.size)
    if args.child:
        assert args.rows_to is not None
        return child(args.child, args.quick, overrides.get(args.child, {}), args.rows_to)

    names = discover()
    wanted = {name for item in args.only for name in item.split(",")}
    if unknown := (wanted | set(overrides)) - set(names):
        raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))} (have {names})")
    names = [name for name in names if not wanted or name in wanted]
    if args.list:
        for name in names:
            module = load(name)
            doc = (module.__doc__ or "").strip().splitlines()[:1]
            sizes = getattr(module, "SIZES", None)
            print(f"{name}: {doc[0] if doc else ''}")
            print(
                f"    sizes {sizes}, quick {getattr(module, 'QUICK', {})}"
                if sizes
                else "    (no SIZES: not runnable by bench/run)"
            )
        return 0

    facts = machine()
    outcomes = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        outcomes.append(run_module(name, args.quick, overrides.get(name, {})))
    facts.append(("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg())))
    print(text_table(table_lines(outcomes)))
    if not args.no_output:
        command = shlex.join(["bench/run", *(argv if argv is not None else sys.argv[1:])])
        args.output.write_text(markdown(outcomes, facts, command))
        print(f"\nwritten to {args.output}", file=sys.stderr)
    return 1 if any(o.error.startswith("failed") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
