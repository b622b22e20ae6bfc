"""How many slave messages a second the transport encodes, checks and decodes.

The wire is CBOR, and the original piwheels once stalled because its CBOR was slow (seed 000):
slaves timed out while the master chewed on BUILT. Here the two messages a slave sends most are
put through :func:`piwheels.message_codec.encode` (the slave's side: shape check + CBOR) and
:func:`piwheels.message_codec.decode` (the master's side: CBOR + shape check into named records):

* BUILT with FILES wheels (names, hashes, tags, a few dependencies) and a LOG_KB build log;
* IDLE with the slave's stats (a timestamp, five numbers).

The reference is bare cbor2 on the same data and the same bytes, with the same hooks for the
types CBOR lacks (durations), and no checking: the ratio is what checking costs. Rows come both
for the round trip and for the master's half alone.

Targets (the round trips): checking may not cost a BUILT of 10 files more than half its speed
(ratio >= 0.50), nor an IDLE more than 30% of it (ratio >= 0.70). Checking is compiled from the
declarations (piwheels.shape_compiler); the ratio is throughput, so higher is faster.

Run: ``python bench/bench_codec.py [--quick] [--files N] [--log-kb N] [--seconds S]``.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from harness import Row, Sizes, best_of_pair, standalone

from piwheels import protocols

# the transport's own hooks: the reference must differ only by the checking
from piwheels.cbor_bounds import decode_tag, encode_extra
from piwheels.message_codec import decode, encode
from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.records.slaves import SlaveStats

# seconds: roughly how long one timing of the checked path lasts (best of repeat are kept)
SIZES: dict[str, int | float] = {"files": 10, "log_kb": 20, "seconds": 0.5, "repeat": 5}
QUICK: dict[str, int | float] = {"seconds": 0.02, "repeat": 1}

SLAVE_SIDE = reversed(protocols.slave_driver)
MASTER_SIDE = protocols.slave_driver


def built(files: int, log_kb: int, seed: int = 1) -> BuildResult:
    """A BUILT as a slave sends it after building a project with compiled extensions."""
    rng = random.Random(seed)
    wheels = []
    for n in range(files):
        name = f"example_pkg{n}"
        wheels.append(
            FileState(
                f"{name}-1.26.{n}-cp311-cp311-linux_armv7l.whl",
                rng.randrange(100_000, 50_000_000),
                rng.randbytes(32).hex(),
                name,
                f"1.26.{n}",
                "cp311",
                "cp311",
                "linux_armv7l",
                frozenset(
                    [Dependency("apt", "libopenblas0-pthread"), Dependency("apt", "libgfortran5")]
                    + [Dependency("pip", f"dep{i}>=1.{i}") for i in range(rng.randrange(4))]
                ),
                ">=3.9",
            )
        )
    line = "".join(rng.choice(string.ascii_letters + " ") for _ in range(99)) + "\n"
    log = line * (log_kb * 1024 // len(line))
    return BuildResult(True, timedelta(minutes=12, seconds=3.5), log, wheels)


def idle() -> SlaveStats:
    return SlaveStats(datetime.now(UTC), 64 << 30, 40 << 30, 4 << 30, 3 << 30, 0.42, 51.5)


def _bare_dumps(action: str, data: Any) -> bytes:
    return cbor2.dumps([action, *data], default=encode_extra, datetime_as_timestamp=False)


def _bare_loads(raw: bytes) -> Any:
    return cbor2.loads(raw, tag_hook=decode_tag)


def calibrate(seconds: float, once: Callable[[], object]) -> int:
    """How many calls of *once* take about *seconds* (at least 10)."""
    count, elapsed = 10, 0.0
    while elapsed < seconds / 4:
        count *= 2
        start = time.perf_counter()
        for _ in range(count):
            once()
        elapsed = time.perf_counter() - start
    return max(10, int(count * seconds / elapsed))


def _repeat(count: int, once: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(count):
            once()

    return run


# The least ratio of the round trip (checked / bare throughput) the issue asks for.
TARGETS = {"BUILT": 0.50, "IDLE": 0.70}


def measure(label: str, action: str, data: Any, sizes: Sizes) -> list[Row]:
    repeat, seconds = int(sizes["repeat"]), float(sizes["seconds"])
    raw = encode(SLAVE_SIDE, action, data)
    # Both paths must carry the same bytes and give back the same data, or the ratio lies.
    assert raw == _bare_dumps(action, data), "the reference encodes differently"
    assert decode(MASTER_SIDE, raw) == (action, data), "the round trip changed the data"

    def round_trip() -> object:
        return decode(MASTER_SIDE, encode(SLAVE_SIDE, action, data))

    def decode_only() -> object:
        return decode(MASTER_SIDE, raw)

    # Each pair of timings runs the same number of messages through both paths.
    count = calibrate(seconds, round_trip)
    checked, bare = best_of_pair(
        repeat,
        _repeat(count, round_trip),
        _repeat(count, lambda: _bare_loads(_bare_dumps(action, data))),
    )
    count_in = calibrate(seconds, decode_only)
    checked_in, bare_in = best_of_pair(
        repeat, _repeat(count_in, decode_only), _repeat(count_in, lambda: _bare_loads(raw))
    )
    size = f"{len(raw) / 1024:.1f} kB" if len(raw) >= 1024 else f"{len(raw)} B"
    least = TARGETS[action]
    return [
        Row(
            f"{label} ({size}): encode + check + decode",
            count / checked,
            count / bare,
            "msg/s",
            "bare cbor2 dumps + loads",
            target=f"ratio >= {least:.2f}",
            met=bare / checked >= least,
        ),
        Row(
            f"{label}: the master's decode + check",
            count_in / checked_in,
            count_in / bare_in,
            "msg/s",
            "bare cbor2 loads",
        ),
    ]


def run(sizes: Sizes) -> list[Row]:
    result = built(int(sizes["files"]), int(sizes["log_kb"]))
    return [
        *measure(f"BUILT, {sizes['files']} files", "BUILT", result, sizes),
        *measure("IDLE", "IDLE", idle(), sizes),
    ]


if __name__ == "__main__":
    standalone(__doc__ or "", SIZES, QUICK, run)
