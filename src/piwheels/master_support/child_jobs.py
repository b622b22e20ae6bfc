"""Work a task hands to a child process so that it costs the master no CPU or GIL time.

A :class:`ChildJob` is one kind of job (say, writing the index root): asked for while it runs,
it runs once more when it ends, so a burst of requests costs at most two runs. Runs start no
more often than every ``min_gap`` seconds, nor so often that the job runs more than ``duty`` of
the time: a job that takes 40 s at PyPI's scale with a duty of 0.1 starts at most every 400 s,
while on a small farm it follows every ``min_gap``. The task checks on it from a timer.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import IO


def ignore_stop_signals() -> None:
    """In a child process of the master: leave stopping to the master.

    Ctrl-C and systemd's stop (SIGTERM to every process of the service at once) reach the
    children with the master. Ended by them, a child looked to its task like a crash (an ERROR
    line, and a restart during the stop); the master ends its children itself once its tasks
    have stopped: it closes their input, and kills what is left.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class ChildJob:
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

    def request(self) -> None:
        """Ask for a run: now if possible, else as soon as the running one ends."""
        self.wanted = True
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
        assert self.process is not None and self.output is not None
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


def end_process(process: subprocess.Popen[bytes]) -> int:
    """Kill *process* (it ignores SIGTERM: see ignore_stop_signals) and return its status."""
    process.kill()
    return process.wait()
