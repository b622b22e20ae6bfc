"""What every benchmark module shares: the Row it reports, timing helpers, a table printer.

A benchmark module (``bench/bench_<name>.py``) exposes ``SIZES``, ``QUICK`` and ``run(sizes)``
(see bench/README.md); ``bench/run`` runs them all and writes BENCHMARKS.md. On a shared, noisy
machine a figure alone means little, so every Row carries a reference measured in the same run
on the same data, and the ratio between the two is the figure to compare across machines.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Size = int | float
Sizes = Mapping[str, Size]


@dataclass(frozen=True)
class Row:
    """One measured figure beside its same-run reference, both in *unit*."""

    name: str
    measured: float
    reference: float
    unit: str
    reference_name: str  # what the reference is, e.g. "bare cbor2 dumps + loads"
    target: str = ""  # the goal in words, e.g. "ratio >= 0.70"; "" when there is none
    met: bool | None = None  # whether the goal was met; None when there is no goal

    @property
    def ratio(self) -> float:
        return self.measured / self.reference if self.reference else math.inf

    @property
    def verdict(self) -> str:
        if self.met is None:
            return ""
        return "met" if self.met else "MISSED"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        return cls(**data)


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The shortest of *repeat* timings of *run*, in seconds: the least disturbed by noise."""
    best = math.inf
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def best_of_pair(
    repeat: int, measured: Callable[[], object], reference: Callable[[], object]
) -> tuple[float, float]:
    """Best-of timings of two functions run alternately, so a burst of load elsewhere on the
    machine falls on both rather than on whichever happened to run during it."""
    best_measured = best_reference = math.inf
    for _ in range(max(1, repeat)):
        best_reference = min(best_reference, best_of(1, reference))
        best_measured = min(best_measured, best_of(1, measured))
    return best_measured, best_reference


def number(value: float) -> str:
    """A figure to four significant digits, thousands separated, never in e-notation."""
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def cells(row: Row, prefix: str = "") -> list[str]:
    """The table cells of *row*: name, measured, reference (what), ratio, target, verdict."""
    return [
        f"{prefix}{row.name}",
        f"{number(row.measured)} {row.unit}",
        f"{number(row.reference)} {row.unit} ({row.reference_name})",
        f"{row.ratio:.2f}",
        row.target,
        row.verdict,
    ]


HEADER = ["benchmark", "measured", "reference (same run)", "ratio", "target", "verdict"]


def text_table(lines: Sequence[Sequence[str]]) -> str:
    """Columns padded to width; the first line is the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(text.rstrip() for text in out)


def markdown_table(lines: Sequence[Sequence[str]]) -> str:
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(escape(c) for c in lines[0]) + " |"]
    out.append("|" + "|".join("---" for _ in lines[0]) + "|")
    out += ["| " + " | ".join(escape(c) for c in line) + " |" for line in lines[1:]]
    return "\n".join(out)


def print_rows(rows: Sequence[Row]) -> None:
    print(text_table([HEADER, *(cells(row) for row in rows)]))


def standalone(
    doc: str, defaults: Sizes, quick: Sizes, run: Callable[[Sizes], list[Row]], argv: Any = None
) -> list[Row]:
    """``python bench/bench_<name>.py [--quick] [--SIZE VALUE ...]``: run one module, print it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny sizes of bench/run --quick")
    for key, value in defaults.items():
        parser.add_argument(
            f"--{key.replace('_', '-')}",
            type=type(value),
            help=f"default {value}, quick {quick.get(key, value)}",
        )
    args = parser.parse_args(argv)
    sizes = dict(defaults) | (dict(quick) if args.quick else {})
    sizes |= {key: value for key in defaults if (value := getattr(args, key)) is not None}
    rows = run(sizes)
    print_rows(rows)
    return rows
