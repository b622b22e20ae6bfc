"""The child processes of the master's tasks, one way for all of them.

Work that would take the master's interpreter from its other tasks runs in a child process.
:class:`ChildProcess` is a long-lived one (the Scribe's project writer, Cloud Gazer's fetch
processes), :class:`ChildJob` one that runs to its end each time it is asked for (the index
root, the search index).

A long-lived child Each speaks a protocol declared in
:mod:`piwheels.protocols` on its stdin and stdout, framed by :mod:`piwheels.pipes`; what it
prints on stderr (an interpreter's traceback) is logged a line at a time. The task polls both
pipes in its own loop, so a child never blocks it. A child ignores SIGINT and SIGTERM (see
:func:`ignore_stop_signals`): its task ends it, by closing its input, then with SIGKILL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from piwheels.message_codec import ProtocolError
from piwheels.pipes import MessageReader, write_message
from piwheels.protocols import NO_DATA, Protocol

if TYPE_CHECKING:
    from piwheels.master_support.task import Task

# What a child prints on stderr is logged line by line; a line longer than MAX_LINE is cut
# there, and each is quoted up to MAX_QUOTE bytes.
MAX_LINE = 4 * 1024 * 1024
MAX_QUOTE = 16 * 1024
REAP_GRACE = 2.0  # seconds a child whose output has ended may take to exit before SIGKILL


def ignore_stop_signals() -> None:
    """In a child process of the master: leave stopping to the master.

    Ctrl-C and systemd's stop (SIGTERM to every process of the service at once) reach the
    children with the master. Ended by them, a child looked to its task like a crash (an ERROR
    line, and a restart during the stop); the master ends its children itself once its tasks
    have stopped: it closes their input, and kills what is left.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def end_process(process: subprocess.Popen[bytes]) -> int:
    """Kill *process* (it ignores SIGTERM: see ignore_stop_signals) and return its status."""
    process.kill()
    return process.wait()


class ChildProcess:
    """One child of *task*: *command* run with *env*, speaking *protocol* (the task's side).

    *on_message* gets each message it sends, *on_end* its exit status once its output has
    ended, however it ended (not after :meth:`stop`)."""

    def __init__(
        self,
        task: Task,
        name: str,
        command: Sequence[str],
        protocol: Protocol,
        *,
        on_message: Callable[[str, Any], None],
        on_end: Callable[[int | None], None],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.task = task
        self.name = name
        self.command = list(command)
        self.protocol = protocol
        self.on_message = on_message
        self.on_end = on_end
        self.env = dict(env) if env is not None else None
        self.log: logging.Logger = task.log
        self.process: subprocess.Popen[bytes] | None = None
        self.started = float("-inf")
        self._said = MessageReader(protocol)
        self._partial = b""  # the start of a line of stderr it has not finished
        self._fds: tuple[int, int] = (-1, -1)  # its stdout and stderr

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self) -> bool:
        """Start it; False (and an ERROR logged) if it cannot be started now."""
        self.started = time.monotonic()
        try:
            process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            self.log.error("cannot start a %s: %s", self.name, exc)
            return False
        assert process.stdout is not None
        assert process.stderr is not None
        self.process = process
        self._said = MessageReader(self.protocol)
        self._partial = b""
        self._fds = (process.stdout.fileno(), process.stderr.fileno())
        for fd in self._fds:
            os.set_blocking(fd, False)
        self.task.register_raw(self._fds[0], self._read)
        self.task.register_raw(self._fds[1], self._read_errors)
        return True

    def send(self, action: str, data: Any = NO_DATA) -> bool:
        """Send a message (a few at most, into an empty pipe: this never waits); False if it
        has gone, which the end of its output then says."""
        if self.process is None or self.process.stdin is None:
            return False
        try:
            write_message(self.process.stdin, self.protocol, action, data)
        except OSError:
            return False
        return True

    def stop(self, grace: float) -> None:
        """Close its input (it exits once done with what it has), let it finish for up to
        *grace* seconds, then kill it. Its messages meanwhile are handled; on_end is not."""
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        deadline = time.monotonic() + grace
        with selectors.DefaultSelector() as selector:
            selector.register(self._fds[0], selectors.EVENT_READ)
            while self.process is not None and (left := deadline - time.monotonic()) > 0:
                if selector.select(left):
                    self._read(ending=True)
        if self.process is not None:
            if grace > 0:
                self.log.info("the %s did not finish in %.0fs: ending it", self.name, grace)
            end_process(self.process)
            self._read(ending=True)  # what it said before it ended
            if self.process is not None:  # (its output still open: something else holds it)
                self._reap()

    def _read(self, *, ending: bool = False) -> None:
        """Take in what it has said; at the end of its output, reap it."""
        while self.process is not None:
            try:
                chunk = os.read(self._fds[0], 65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self.log.error("cannot read from %s: %s", self.name, exc)
                chunk = b""
            if not chunk:
                status = self._reap()
                if not ending:
                    self.on_end(status)
                return
            for message in self._said.feed(chunk):
                if isinstance(message, ProtocolError):
                    self.log.error("%s: %s", self.name, message)
                else:
                    self.on_message(*message)

    def _read_errors(self) -> None:
        """Log what it printed on stderr, a line at a time."""
        while self.process is not None:
            try:
                chunk = os.read(self._fds[1], 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.task.mute(self._fds[1])  # at its end, stderr would wake the loop for ever
                return
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()
            if len(self._partial) > MAX_LINE:
                lines.append(self._partial)
                self._partial = b""
            for line in lines:
                self._quote(line)

    def _quote(self, line: bytes) -> None:
        if line.strip():
            text = line[:MAX_QUOTE].decode("utf-8", "replace").rstrip()
            self.log.error("%s: %s%s", self.name, text, " ..." if len(line) > MAX_QUOTE else "")

    def _reap(self) -> int | None:
        """Forget the process and wait for its exit status (killing it if it lingers)."""
        process = self.process
        assert process is not None
        self._read_errors()
        if self._partial:
            self._quote(self._partial)  # its last words, without a newline
            self._partial = b""
        self.process = None
        for fd in self._fds:
            self.task.mute(fd)
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._fds = (-1, -1)
        try:
            return process.wait(REAP_GRACE)
        except subprocess.TimeoutExpired:  # its output closed, and yet it runs on
            return end_process(process)


class ChildJob:
    """One kind of job run in a child process to its end (say, writing the index root).

    Asked for while it runs, it runs once more when it ends, so a burst of requests costs at
    most two runs. Runs start no more often than every ``min_gap`` seconds, nor so often that
    the job runs more than ``duty`` of the time: a job that takes 40 s at PyPI's scale with a
    duty of 0.1 starts at most every 400 s, while on a small farm it follows every ``min_gap``.
    The task checks on it from a timer; what it prints is logged when it ends.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        log: logging.Logger,
        *,
        min_gap: float = 0.0,
        duty: float = 1.0,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = dict(env)
        self.log = log
        self.min_gap = min_gap
        self.duty = duty
        self.took = 0.0  # how long the last finished run took
        self.wanted = False
        self.process: subprocess.Popen[bytes] | None = None
        self.output: IO[bytes] | None = None
        self.started = float("-inf")
        self.runs = 0  # finished runs, whatever their outcome

    @property
    def running(self) -> bool:
        return self.process is not None

    def request(self, *, unspaced: bool = False) -> None:
        """Ask for a run: now if possible, else as soon as the running one ends. *unspaced* (an
        operator asking) lets it start before the gap between runs has passed."""
        self.wanted = True
        if unspaced:
            self.started = float("-inf")
        self.check()

    def check(self) -> None:
        """Collect a finished run, and start the next if one is wanted and due."""
        if self.process is not None and self.process.poll() is not None:
            self._collect()
        gap = max(self.min_gap, self.took / self.duty)
        due = time.monotonic() - self.started >= gap
        if self.wanted and self.process is None and due:
            self._start()

    def _start(self) -> None:
        self.wanted = False
        self.started = time.monotonic()
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _collect)
        try:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=self.output,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            self.log.error("cannot start %s: %s", self.name, exc)
            self.output.close()
            self.output = None
            self.wanted = True  # tried again after min_gap

    def _collect(self, *, stopped: bool = False) -> None:
        assert self.process is not None
        assert self.output is not None
        status = self.process.returncode
        self.output.seek(0)
        said = self.output.read(64 * 1024).decode("utf-8", "replace").strip()
        self.output.close()
        self.process, self.output = None, None
        self.runs += 1
        took = self.took = time.monotonic() - self.started
        if stopped and status != 0:
            self.log.info("%s: stopped after %.1fs (redone at the next start)", self.name, took)
        elif status == 0:
            last = said.splitlines()[-1] if said else "done"
            self.log.info("%s: %s (%.1fs)", self.name, last, took)
        else:
            self.log.error("%s failed (status %s, %.1fs): %s", self.name, status, took, said)

    def stop(self) -> None:
        """End a run in progress (its output is written atomically: nothing half-done stays)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            end_process(self.process)
        self._collect(stopped=True)
