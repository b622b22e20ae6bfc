"""Reading logs as piw-logger meets them: a file the server is writing, the same log rotated and
gzipped (by the real gzip), a pipe, and resuming each from an offset read before."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from access_logs.captured import LOGS
from piwheels.access_logs.hits import classify
from piwheels.access_logs.lines import parse_line
from piwheels.access_logs.reading import BLOCK, MAX_LINE, LogFile, open_log

REAL = (LOGS / "nginx.log").read_bytes()
DIGEST = hashlib.sha256(REAL.split(b"\n", 1)[0]).hexdigest()  # of the first line


def expected_lines(data: bytes, start: int = 0) -> list[tuple[bytes, int]]:
    """Every newline-terminated line of *data* after offset *start*, with the offset past it."""
    found = []
    at = start
    while (end := data.find(b"\n", at)) >= 0:
        found.append((data[at:end], end + 1))
        at = end + 1
    return found


def read_all(path: Path, start: int = 0) -> list[tuple[bytes, int]]:
    with open_log(str(path)) as stream:
        return list(LogFile(stream, str(path)).lines(start))


@contextlib.contextmanager
def piped(data: bytes) -> Iterator[BinaryIO]:
    """A real pipe that *data* comes through, as a log does from `zcat ... | piw-logger -`."""
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(data)  # small enough for the pipe's buffer
    process.stdin.close()
    try:
        yield cast("BinaryIO", process.stdout)
    finally:
        process.stdout.close()
        process.wait()


@pytest.fixture
def rotated(tmp_path: Path) -> tuple[Path, Path, Path]:
    """access.log as the server begins it again, and the same log rotated twice: access.log.1,
    then access.log.2.gz."""
    if shutil.which("gzip") is None:
        pytest.skip("gzip is not installed")
    older = tmp_path / "access.log.2"
    older.write_bytes(REAL)
    subprocess.run(["gzip", "-9", str(older)], check=True)  # as logrotate's compress does
    (tmp_path / "access.log.1").write_bytes(REAL)
    (tmp_path / "access.log").write_bytes(REAL[: REAL.index(b"\n", 2000) + 1])
    return tmp_path / "access.log", tmp_path / "access.log.1", tmp_path / "access.log.2.gz"


def test_every_line_with_the_offset_past_it(rotated: tuple[Path, Path, Path]) -> None:
    for path in rotated:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        assert read_all(path) == expected_lines(data)


def test_a_log_keeps_its_identity_through_rotation(rotated: tuple[Path, Path, Path]) -> None:
    for path in rotated:
        with open_log(str(path)) as stream:
            assert LogFile(stream, str(path)).identity() == DIGEST


def test_the_identity_leaves_every_line_to_read(rotated: tuple[Path, Path, Path]) -> None:
    _, plain, compressed = rotated
    for path in (plain, compressed):
        with open_log(str(path)) as stream:
            log = LogFile(stream, str(path))
            assert log.identity() == DIGEST
            assert list(log.lines()) == expected_lines(REAL)
            assert log.identity() == DIGEST


def test_resuming_at_each_offset_gives_exactly_the_lines_after_it(
    rotated: tuple[Path, Path, Path],
) -> None:
    _, plain, compressed = rotated
    for path in (plain, compressed):
        for _, offset in [(b"", 0), *expected_lines(REAL)]:
            assert read_all(path, offset) == expected_lines(REAL, offset), (path.name, offset)


def test_resuming_where_a_reading_of_the_live_log_stopped(
    rotated: tuple[Path, Path, Path],
) -> None:
    live, _, compressed = rotated
    stopped = read_all(live)[-1][1]
    # the server wrote on; the log was rotated, then compressed
    assert read_all(compressed, stopped) == expected_lines(REAL, stopped)


def test_resuming_a_pipe_reads_up_to_the_offset() -> None:
    offset = expected_lines(REAL)[9][1]
    with piped(REAL) as stream:
        log = LogFile(stream, "-")
        assert log.identity() == DIGEST
        assert list(log.lines(offset)) == expected_lines(REAL, offset)


def test_a_compressed_log_can_go_back(rotated: tuple[Path, Path, Path]) -> None:
    _, _, compressed = rotated
    with open_log(str(compressed)) as stream:
        log = LogFile(stream, str(compressed))
        assert list(log.lines()) == expected_lines(REAL)
        back = expected_lines(REAL)[2][1]
        assert list(log.lines(back)) == expected_lines(REAL, back)


def test_a_compressed_log_cut_short_says_so(tmp_path: Path) -> None:
    # as one being written by logrotate's gzip would be
    path = tmp_path / "access.log.1.gz"
    path.write_bytes(gzip.compress(REAL)[:-100])
    with pytest.raises(EOFError):
        read_all(path)


def test_a_pipe_cannot_go_back() -> None:
    with piped(REAL) as stream:
        log = LogFile(stream, "-")
        list(log.lines())
        with pytest.raises(ValueError, match="cannot go back to offset 10"):
            log.lines(10)


def test_lines_straddling_blocks_come_whole(tmp_path: Path) -> None:
    data = REAL * (3 * BLOCK // len(REAL) + 1)  # over three blocks, cut anywhere in a line
    path = tmp_path / "access.log"
    path.write_bytes(data)
    compressed = tmp_path / "access.log.1.gz"
    compressed.write_bytes(gzip.compress(data))
    resume = expected_lines(data)[-5][1]  # in the last block: sought, or read up to
    for name in (path, compressed):
        assert read_all(name) == expected_lines(data)
        assert read_all(name, resume) == expected_lines(data, resume)


def test_a_live_log_holds_back_its_unfinished_last_line(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    lines = expected_lines(REAL)
    unfinished = REAL[: lines[3][1] + 50]  # the server is writing line 5
    path.write_bytes(unfinished)
    with path.open("rb") as stream:
        log = LogFile(stream, str(path))
        assert log.live
        assert list(log.lines()) == lines[:4]
        with path.open("ab") as server:
            server.write(REAL[len(unfinished) : lines[5][1]])
        # the same reader, from where it stopped, and a new one
        assert list(log.lines(lines[3][1])) == lines[4:6]
    assert read_all(path, lines[3][1]) == lines[4:6]


@pytest.mark.parametrize("kind", ["pipe", "gzip", "not live"])
def test_the_end_of_other_streams_ends_their_last_line(kind: str, tmp_path: Path) -> None:
    data = REAL + b"the last line, without its newline"
    expected = [*expected_lines(REAL), (b"the last line, without its newline", len(data))]
    if kind == "pipe":
        with piped(data) as stream:
            assert list(LogFile(stream, "-").lines()) == expected
    elif kind == "gzip":
        (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(data))
        assert read_all(tmp_path / "access.log.1.gz") == expected
    else:
        (tmp_path / "access.log").write_bytes(data)
        with (tmp_path / "access.log").open("rb") as stream:
            assert list(LogFile(stream, "access.log", live=False).lines()) == expected


def test_standard_input(tmp_path: Path) -> None:
    reader = (
        "import sys\n"
        "from piwheels.access_logs.reading import LogFile, open_log\n"
        "log = LogFile(open_log('-'), '-')\n"
        "print(log.live, log.identity(), sum(1 for _ in log.lines()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader],
        input=REAL + b"unterminated",
        capture_output=True,
        check=True,
    )
    assert done.stdout.split() == [b"False", DIGEST.encode(), b"%d" % (REAL.count(b"\n") + 1)]


def test_an_empty_log_has_no_identity_until_a_line_is_written(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"")
    with path.open("rb") as stream:
        log = LogFile(stream, str(path))
        assert log.identity() is None
        assert list(log.lines()) == []
        path.write_bytes(REAL[:100])  # half a line
        assert log.identity() is None
        path.write_bytes(REAL)
        assert log.identity() == DIGEST
        assert list(log.lines()) == expected_lines(REAL)


def test_which_logs_are_live(tmp_path: Path) -> None:
    (tmp_path / "access.log").write_bytes(REAL)
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(REAL))
    with open_log(str(tmp_path / "access.log")) as stream:
        assert LogFile(stream, "access.log").live
    with open_log(str(tmp_path / "access.log.1.gz")) as stream:
        assert not LogFile(stream, "access.log.1.gz").live
    with piped(REAL) as stream:
        assert not LogFile(stream, "-").live
    assert not LogFile(io.BytesIO(REAL), "in memory").live


def test_overlong_lines_are_reported_empty(tmp_path: Path) -> None:
    longest = b"x" * MAX_LINE
    data = b"short\n" + longest + b"\n" + longest + b"y\n" + b"z" * (5 * MAX_LINE) + b"\nend\n"
    path = tmp_path / "access.log"
    path.write_bytes(data)
    assert [(line[:5], offset) for line, offset in read_all(path)] == [
        (b"short", 6),
        (b"xxxxx", 6 + MAX_LINE + 1),  # kept: exactly the limit
        (b"", 6 + 2 * (MAX_LINE + 1) + 1),
        (b"", len(data) - 4),
        (b"end", len(data)),
    ]


def test_a_pathological_line_costs_no_more_memory_than_a_few_blocks(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"first\n" + b"a" * (16 * MAX_LINE) + b"\nlast")
    with path.open("rb") as stream:
        tracemalloc.start()
        try:
            got = list(LogFile(stream, str(path), live=False).lines())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert got == [(b"first", 6), (b"", 6 + 16 * MAX_LINE + 1), (b"last", 6 + 16 * MAX_LINE + 5)]
    assert peak < 4 * MAX_LINE


def test_an_overlong_first_line_is_known_by_its_start(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"b" * (MAX_LINE + 10) + b"\nnext\n")
    with path.open("rb") as stream:
        log = LogFile(stream, str(path))
        assert log.identity() == hashlib.sha256(b"b" * MAX_LINE).hexdigest()
        assert list(log.lines()) == [(b"", MAX_LINE + 11), (b"next", MAX_LINE + 16)]


def test_bytes_are_passed_on_as_they_are(tmp_path: Path) -> None:
    data = b"nul \x00 here\ninvalid \xff\xfe utf-8\r\n\n"
    path = tmp_path / "access.log"
    path.write_bytes(data)
    assert read_all(path) == expected_lines(data)


def test_a_rotated_log_read_to_its_hits(rotated: tuple[Path, Path, Path]) -> None:
    _, _, compressed = rotated
    kinds = [
        hit.kind.value
        for line, _ in read_all(compressed)
        if (hit := classify(parse_line(line.decode("utf-8", "surrogateescape")))) is not None
    ]
    assert kinds.count("download") == 4
    assert kinds.count("search") == 5
