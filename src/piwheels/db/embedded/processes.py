"""Whether a PostgreSQL server process is still there, read from /proc.

Stopping the cluster must leave no process behind, and starting it must not be refused because
of a lock file naming a process long gone. Neither question is as simple as "does the pid exist":
a killed postmaster can linger as a zombie its adopter never reaps, and after a reboot its number
may belong to anything else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether *pid* is a process that has not finished (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists, but belongs to someone else.
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    # A zombie has finished; it only waits for a parent (maybe an init that never reaps) to
    # collect its exit status.
    return state != "Z"


def postmaster_alive(pid: int) -> bool:
    """Whether *pid*, read from a lock file, is still a PostgreSQL server process."""
    if not process_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    # After a reboot the number may belong to anything; postgres, seeing it alive, would refuse
    # to start until someone deleted the lock file by hand.
    return b"postgres" in command


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is *pid*."""
    children = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            children.append(int(entry.parent.name))
    return children


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait up to *timeout* seconds for every one of *pids* to finish; those still alive."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if process_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [pid for pid in alive if process_alive(pid)]
    return alive
