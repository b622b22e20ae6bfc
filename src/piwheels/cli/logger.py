"""``piw-logger``: the web server's access logs -> the master's Hit Counter.

Reads nginx's or Apache's "combined" access logs (files, rotated and gzipped files, or standard
input as a piped log program) and sends the downloads, index look-ups ("searches"), project
pages and JSON it finds to the master a batch at a time. Each log resumes where the master has
it recorded (see migrations/0017_downloads.sql), so the same files can be given again, after a
rotation or a crash, and no line is counted twice.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import queue
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Self

import zmq

from piwheels import defaults, protocols
from piwheels.access_logs.clients import Client
from piwheels.access_logs.hits import HitKind, classify
from piwheels.access_logs.lines import BadLine, parse_line
from piwheels.access_logs.reading import LogFile, open_log
from piwheels.cli.options import per_run
from piwheels.cli.tools import (
    BadInput,
    MasterError,
    MasterUnreachable,
    check_ipc_path,
    make_tool_parser,
    positive_seconds,
    run_tool,
)
from piwheels.message_codec import ProtocolError
from piwheels.protocols import Failure
from piwheels.records.hits import ClientRow, DailyHits, Download, HitBatch
from piwheels.transport import Socket

__all__ = ["main"]

log = logging.getLogger("piwheels.cli.logger")

DESCRIPTION = """\
Send what the web server's access logs hold (wheel downloads, installers' look-ups, project
pages and their JSON) to the master, which counts them for the pages and the build queue. Give
log files (rotated and .gz ones too, oldest first), or none to read standard input, as Apache's
piped log program (CustomLog "|piw-logger" combined) or from a pipe. Logs must be in the
"combined" format. Each log resumes where the master has it recorded: give the same files again
after a rotation or a restart and nothing is counted twice.
"""
BATCH = 1000  # lines' findings per HITS (the protocol allows 5,000)
FLUSH = 5.0  # seconds a pipe's findings wait for more before they are sent
BACKLOG = 100_000  # lines a pipe may have read ahead of the master; past it, lines are dropped
RETRY = 5.0  # seconds between attempts to reach a master that does not answer


def build_parser() -> argparse.ArgumentParser:
    parser = make_tool_parser("piw-logger", DESCRIPTION)
    per_run(
        parser.add_argument(
            "logs", nargs="*", metavar="LOG", help="access logs to read (default: standard input)"
        )
    )
    group = parser.add_argument_group("the master")
    group.add_argument(
        "--log-queue",
        default=defaults.LOG_QUEUE,
        metavar="ADDR",
        help="the master's --log-queue, where the Hit Counter answers (a ZeroMQ address)",
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long to keep trying a master that does not answer before giving up (exit 3); "
        "reading standard input, it is tried for ever and lines past a backlog are dropped",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(build_parser(), argv, run)


def run(args: argparse.Namespace) -> None:
    names = args.logs or ["-"]
    if names.count("-") > 1:
        raise BadInput("standard input (-) can be read only once")
    with HitCounterClient(args.log_queue, args.timeout) as client:
        for name in names:
            try:
                stream = open_log(name)
            except OSError as exc:
                raise BadInput(f"cannot read {name}: {exc}") from None
            with stream:
                report = read_log(LogFile(stream, name), client, piped=_is_pipe(stream))
            print(f"{name}: {report}")


@dataclass
class Report:
    resumed_at: int = 0
    lines: int = 0
    bad_lines: int = 0
    dropped: int = 0
    downloads: int = 0
    other_hits: int = 0

    def __str__(self) -> str:
        said = (
            f"{self.lines:,} lines read ({self.bad_lines:,} not understood), "
            f"{self.downloads:,} downloads and {self.other_hits:,} other hits recorded"
        )
        if self.resumed_at:
            said += f"; resumed at byte {self.resumed_at:,}"
        if self.dropped:
            said += f"; {self.dropped:,} lines dropped while the master did not answer"
        return said


@dataclass
class Batch:
    """The findings of a log's lines from *start*, until they are sent."""

    log: str
    start: int
    lines: int = 0
    bad_lines: int = 0
    clients: dict[ClientRow, int] = field(default_factory=dict)
    downloads: list[Download] = field(default_factory=list)
    daily: Counter[tuple[str, str, datetime]] = field(default_factory=Counter)

    def add(self, raw: bytes) -> None:
        self.lines += 1
        try:
            # bytes that are not UTF-8 (in an agent, say) are the parser's to judge
            hit = classify(parse_line(raw.decode("utf-8", "surrogateescape")))
        except BadLine:
            self.bad_lines += 1
            return
        if hit is None:
            return
        if hit.kind is HitKind.DOWNLOAD:
            row = client_row(hit.client)
            place = self.clients.setdefault(row, len(self.clients))
            self.downloads.append(Download(hit.time, hit.filename or "", hit.project, place))
        else:
            day = hit.time.replace(hour=0, minute=0, second=0, microsecond=0)
            self.daily[hit.project, hit.kind.value, day] += 1

    def full(self) -> bool:
        return len(self.downloads) >= BATCH or len(self.daily) >= BATCH or self.lines >= 50 * BATCH

    def take(self, end: int) -> HitBatch:
        return HitBatch(
            log=self.log,
            start=self.start,
            end=end,
            lines=self.lines,
            bad_lines=self.bad_lines,
            clients=list(self.clients),
            downloads=self.downloads,
            hits=[DailyHits(p, kind, day, n) for (p, kind, day), n in self.daily.items()],
        )


# The same few thousand clients come back all day; parse_user_agent hands back equal Clients.
@functools.lru_cache(maxsize=4096)
def client_row(client: Client) -> ClientRow:
    """*client* as the schema keeps it: the same fields, "" where it said nothing."""
    return ClientRow._make(getattr(client, name) or "" for name in ClientRow._fields)


def read_log(log_file: LogFile, client: HitCounterClient, *, piped: bool = False) -> Report:
    """Send *log_file*'s findings from where the master has it recorded; what was sent."""
    identity = log_file.identity()
    report = Report()
    if identity is None:
        return report  # not a complete line yet: nothing to know it by
    report.resumed_at = start = client.cursor(identity)
    batch = Batch(identity, start)
    end = start
    read = log_file.lines(start)
    lines: Iterator[tuple[bytes, int] | None] = _ahead(read, report) if piped else read
    for line in lines:
        if line is not None:
            raw, end = line
            batch.add(raw)
        if batch.lines and (line is None or batch.full()):
            batch = _send(client, batch, end, report, forever=piped)
    if batch.lines:
        # The pipe has ended (its server stopped): the last lines get --timeout, not forever,
        # so that a logger whose master has gone too ends rather than outliving them both.
        _send(client, batch, end, report, forever=False)
    return report


def _send(
    client: HitCounterClient, batch: Batch, end: int, report: Report, *, forever: bool
) -> Batch:
    """Record *batch* (read to *end*), and the next batch to fill."""
    client.record(batch.take(end), forever=forever)
    report.lines += batch.lines
    report.bad_lines += batch.bad_lines
    report.downloads += len(batch.downloads)
    report.other_hits += sum(batch.daily.values())
    return Batch(batch.log, end)


_END = (b"", -1)


def _ahead(
    lines: Iterator[tuple[bytes, int]], report: Report
) -> Iterator[tuple[bytes, int] | None]:
    """A pipe's lines, read by a thread so that the web server writing them never waits for
    the master: past BACKLOG lines unsent, lines are dropped (and counted). None: FLUSH
    seconds passed with no line, time to send what there is."""
    backlog: queue.Queue[tuple[bytes, int]] = queue.Queue(BACKLOG)

    def read() -> None:
        for line in lines:
            try:
                backlog.put_nowait(line)
            except queue.Full:
                report.dropped += 1
        backlog.put(_END)

    threading.Thread(target=read, name="reader", daemon=True).start()
    while True:
        try:
            line = backlog.get(timeout=FLUSH)
        except queue.Empty:
            yield None
            continue
        if line is _END:
            return
        yield line


def _is_pipe(stream: BinaryIO) -> bool:
    """Whether *stream* is written as it is read (a pipe, a terminal), not a file."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # a gzip stream has the file's descriptor: a file
        return False


class HitCounterClient:
    """A REQ socket to the Hit Counter; a master that does not answer is tried again every
    RETRY seconds for *timeout* seconds (or, with ``forever``, until it answers)."""

    def __init__(self, address: str, timeout: float) -> None:
        check_ipc_path(address, "--log-queue")
        self.address = address
        self.timeout = timeout
        self.context: zmq.Context[Any] = zmq.Context.instance()
        self.sock = self._connect()

    def _connect(self) -> Socket:
        sock = Socket(zmq.REQ, reversed(protocols.hit_counter), context=self.context)
        try:
            return sock.connect(self.address)
        except zmq.ZMQError as exc:
            sock.close()
            raise BadInput(f"cannot use --log-queue {self.address!r}: {exc}") from None

    def cursor(self, log: str) -> int:
        return int(self._request("CURSOR", log, forever=False))

    def record(self, batch: HitBatch, *, forever: bool) -> None:
        try:
            self._request("HITS", batch, forever=forever)
        except Stale:
            # Recorded already, its answer lost: the cursor is past it. Anything else means
            # another reader has moved it: two readers of one log would count it twice.
            if self.cursor(batch.log) != batch.end:
                raise MasterError(
                    f"log {batch.log[:12]} is being read by another piw-logger "
                    "(or was recorded elsewhere): stopping"
                ) from None

    def _request(self, action: str, data: Any, *, forever: bool) -> Any:
        give_up = time.monotonic() + self.timeout
        while True:
            answer = self._ask(action, data)
            if answer is _SILENCE:
                why = "no answer"
            elif not isinstance(answer, Failure):
                return answer
            elif answer.kind == "stale":
                raise Stale(answer.message)
            elif answer.kind == "unavailable":  # the database: the master is still there
                why = answer.message
            else:
                raise MasterError(answer.message)
            if not forever and time.monotonic() >= give_up:
                raise MasterUnreachable(
                    f"{why} from the master at {self.address} within {self.timeout:g}s "
                    "(is piw-master running, with this --log-queue?)"
                )
            log.warning("%s from the master at %s; trying again in %gs", why, self.address, RETRY)
            time.sleep(RETRY)

    def _ask(self, action: str, data: Any) -> Any:
        """The answer to one request, as the protocol declares it, or _SILENCE."""
        self.sock.send(action, data)
        if not self.sock.poll(min(self.timeout, 6 * RETRY) * 1000):
            # a REQ that missed its answer is stuck: start afresh
            self.sock.close()
            self.sock = self._connect()
            return _SILENCE
        try:
            reply, reply_data = self.sock.recv()
        except ProtocolError as exc:
            raise MasterError(f"the master's answer to {action} makes no sense: {exc}") from None
        return protocols.hit_counter.answer(action, reply, reply_data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Stale(Exception):
    """The log's cursor is not where the batch starts."""


_SILENCE = object()  # no answer in time


if __name__ == "__main__":
    raise SystemExit(main())
