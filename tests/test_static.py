"""The tree's static checks, run with the tests so that CI holds them: ruff's rules and format
over everything, and mypy --strict over src/ (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing() -> None:
    checked = run("ruff", "check", "--no-cache", ".")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_tree_is_formatted() -> None:
    formatted = run("ruff", "format", "--no-cache", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_src_passes_mypy_strict() -> None:
    typed = run("mypy", "--no-incremental")
    assert typed.returncode == 0, typed.stdout + typed.stderr
