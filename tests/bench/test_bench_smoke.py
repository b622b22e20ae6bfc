"""bench/run and its modules at tiny sizes, so the harness never rots.

Each module runs as ``bench/run`` runs it (a child process, its --quick sizes) and must give
rows of finite numbers; the report must be writable anywhere. No timing is asserted: the
machine is shared and noisy, and the figures are the benchmarks' business, not the tests'.
The scale benchmarks (queue, slaves) have their own smoke test, test_bench_scale_smoke.py;
here they are only checked for the interface.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import runner  # noqa: E402
from harness import Row  # noqa: E402

OURS = ["codec", "juggler", "logs", "pages", "pypi"]


def check_rows(rows: list[Row]) -> None:
    assert rows
    for row in rows:
        assert row.name and row.unit and row.reference_name
        assert math.isfinite(row.measured) and math.isfinite(row.reference), row
        assert row.met in (None, True, False)
        assert bool(row.target) == (row.met is not None), row


@pytest.mark.parametrize("name", OURS)
def test_module_gives_rows_of_numbers(name: str) -> None:
    outcome = runner.run_module(name, quick=True, overrides={})
    assert outcome.error == ""
    check_rows(outcome.rows)
    module = runner.load(name)
    assert outcome.sizes == module.SIZES | module.QUICK


@pytest.mark.parametrize("name", runner.discover())
def test_every_module_has_the_interface(name: str) -> None:
    module = runner.load(name)
    assert callable(module.run)
    assert set(module.QUICK) <= set(module.SIZES)
    assert all(isinstance(v, int | float) for v in module.SIZES.values())


def test_run_prints_the_table_and_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "deep" / "BENCHMARKS.md"
    report.parent.mkdir()
    done = subprocess.run(
        [str(BENCH_DIR / "run"), "--quick", "--only", "codec", "--output", str(report)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    assert "codec: BUILT, 10 files" in done.stdout
    text = report.read_text()
    assert "| codec: IDLE" in text
    for fact in ("uname", "CPU", "cores", "memory", "Python", "PostgreSQL", "date"):
        assert f"| {fact} |" in text
    assert "**codec**" in text  # the sizes used


def test_sizes_on_the_command_line_reach_the_module() -> None:
    # bench/run hands its --size options on to the module's child process
    outcome = runner.run_module("codec", quick=True, overrides={"log_kb": "3"})
    assert outcome.error == ""
    assert outcome.sizes["log_kb"] == 3


def test_a_failing_module_is_reported_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bench_broken.py").write_text(
        "SIZES = {'n': 1}\nQUICK = {}\ndef run(sizes):\n    raise OSError('no disk')\n"
    )
    (tmp_path / "bench_nointerface.py").write_text("print('a script of its own')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "rows.json"
    assert runner.child("broken", quick=True, overrides={}, out=out) == 1
    assert "failed: OSError: no disk" in out.read_text()
    assert runner.child("nointerface", quick=True, overrides={}, out=out) == 0
    assert "skipped" in out.read_text()


def test_sizes_from_the_command_line_take_the_defaults_type() -> None:
    overrides = runner.parse_sizes(["codec.log_kb=5", "codec.seconds=0.5"])
    sizes = runner.effective_sizes(runner.load("codec"), True, overrides["codec"])
    assert sizes["log_kb"] == 5 and isinstance(sizes["log_kb"], int)
    assert sizes["seconds"] == 0.5
    with pytest.raises(SystemExit, match="no size 'nonsense'"):
        runner.effective_sizes(runner.load("codec"), False, {"nonsense": "1"})
    with pytest.raises(SystemExit, match=r"MODULE\.SIZE=VALUE"):
        runner.parse_sizes(["log_kb=5"])
