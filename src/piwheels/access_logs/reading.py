"""Reading an access log's lines, from the start or from where an earlier reading stopped.

A log is known by its first line (its identity), which stays with it through rotation:
access.log becomes access.log.1, then access.log.1.gz, and a reader that stopped at an offset in
the first can go on from that offset in either of the others. Offsets count bytes of the
uncompressed stream.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

BLOCK = 1 << 20  # bytes read at a time
MAX_LINE = 1 << 20  # a longer line is not kept, only its end reported


def open_log(name: str) -> BinaryIO:
    """The log called *name*: "-" is standard input, a name ending ".gz" is decompressed."""
    if name == "-":
        return sys.stdin.buffer
    if name.endswith(".gz"):
        return cast("BinaryIO", gzip.open(name, "rb"))
    return Path(name).open("rb")


def _is_regular_file(stream: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False  # no file descriptor: an in-memory stream, or a closed one


def _seekable(stream: BinaryIO) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, OSError, ValueError):
        return False


class LogFile:
    """One log being read: its identity (the sha256 hex of its first complete line: the same for
    access.log, its rotated access.log.1 and access.log.1.gz, so a reader can resume across
    rotation) and its complete lines, each with the byte offset (in the uncompressed stream)
    just past it.

    A *live* log may be being written, so a last line without its newline is left for the next
    reading; otherwise (pipes, compressed files) the end of the stream ends the last line. By
    default a log is live if it is a regular, uncompressed file.

    Lines longer than MAX_LINE are yielded as b"" (with their true offset), so that one
    pathological line costs no more memory than a normal block. The identity of a log whose first
    line is that long is the digest of its first MAX_LINE bytes.
    """

    def __init__(self, stream: BinaryIO, name: str, *, live: bool | None = None) -> None:
        self.name = name
        self._stream = stream
        compressed = isinstance(stream, gzip.GzipFile) or name.endswith(".gz")
        # a GzipFile "seeks" by decompressing from the start: reading on is never slower
        self._can_seek = not compressed and _seekable(stream)
        self.live = (not compressed and _is_regular_file(stream)) if live is None else live
        read1 = getattr(stream, "read1", None)
        # read1 returns what a pipe has rather than waiting for a whole block
        self._read: Callable[[int], bytes] = read1 if callable(read1) else stream.read
        self._head = b""  # read from the stream for identity(), not yet given to lines()
        self._position = 0  # offset of the next byte the stream gives
        self._identity: str | None = None

    def identity(self) -> str | None:
        """The digest of the first complete line, or None if there is none yet (asked again,
        it looks again)."""
        if self._identity is None:
            self._identity = self._first_line_digest()
        return self._identity

    def _first_line_digest(self) -> str | None:
        if self._position - len(self._head) != 0:
            # lines() has read past the start: only a file can be read there again
            if not self._can_seek:
                return None
            self._stream.seek(0)
            self._head = b""
            self._position = 0
        head = self._head
        while (end := head.find(b"\n")) < 0 and len(head) <= MAX_LINE:
            block = self._read(BLOCK)
            if not block:
                break
            head += block
            self._position += len(block)
        self._head = head
        if end < 0:
            if len(head) <= MAX_LINE and (self.live or not head):
                return None
            end = len(head)
        return hashlib.sha256(head[: min(end, MAX_LINE)]).hexdigest()

    def lines(self, start: int = 0) -> Iterator[tuple[bytes, int]]:
        """The complete lines from offset *start* (0, or an offset this gave before), each
        without its newline and with the offset past it.

        A file is sought to *start*; other streams are read up to it (a pipe cannot go back:
        ValueError). Only one iteration may be in progress at a time. A compressed file that
        ends early raises what gzip raises (EOFError, gzip.BadGzipFile).
        """
        self.identity()  # reads the first line now, which the lines below are given
        head, end = self._head, self._position
        self._head = b""
        if end - len(head) <= start <= end:
            data = head[start - (end - len(head)) :]
        elif self._can_seek or (start < end and _seekable(self._stream)):
            # a compressed file goes back by decompressing again from its start
            self._stream.seek(start)
            self._position = start
            data = b""
        elif start > end:
            self._skip(start - end)
            data = b""
        else:
            raise ValueError(f"{self.name}: cannot go back to offset {start} in this stream")
        return self._split(start, data)

    def _skip(self, count: int) -> None:
        while count > 0:
            block = self._read(min(count, BLOCK))
            if not block:
                return
            count -= len(block)
            self._position += len(block)

    def _split(self, at: int, data: bytes) -> Iterator[tuple[bytes, int]]:
        """The lines from offset *at*, whose first bytes, *data*, are already read."""
        carry: list[bytes] = []  # the start of a line that goes on in the next block
        carried = 0  # its length, still counted when it is too long to keep
        while True:
            first = data.find(b"\n")
            if first >= 0:
                # the carried line ends here; only it can be longer than a block
                at += carried + first + 1
                if carried + first > MAX_LINE:
                    yield b"", at
                else:
                    yield b"".join(carry) + data[:first] if carry else data[:first], at
                last = data.rfind(b"\n")
                if last > first:
                    for line in data[first + 1 : last].split(b"\n"):
                        at += len(line) + 1
                        yield line, at
                carry = [data[last + 1 :]]
                carried = len(data) - last - 1
            elif data:
                carried += len(data)
                if carried > MAX_LINE:
                    carry.clear()
                else:
                    carry.append(data)
            data = self._read(BLOCK)
            if not data:
                break
            self._position += len(data)
        if carried and not self.live:
            yield (b"".join(carry) if carried <= MAX_LINE else b""), at + carried
