"""Whether a server's process is still there: finished, a zombie, or a number reused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.embedded.processes import child_pids, postmaster_alive, process_alive, wait_gone

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_running_process_is_alive_and_a_reaped_one_is_not() -> None:
    child = subprocess.Popen(SLEEP)
    try:
        assert process_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid)


def test_a_zombie_has_finished() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never finished"
        time.sleep(0.01)
    try:
        assert not process_alive(child.pid)  # not reaped yet, but done
    finally:
        child.wait()


def test_a_running_server_is_a_postmaster(pg_server: EmbeddedPostgres) -> None:
    pg_server.start()
    pid = int((pg_server.data_dir / "postmaster.pid").read_text().split()[0])
    assert postmaster_alive(pid)
    assert child_pids(pid)  # its background workers


def test_a_number_that_is_not_postgres_is_no_postmaster() -> None:
    assert process_alive(os.getpid())
    assert not postmaster_alive(os.getpid())  # alive, but python
    assert process_alive(1)  # another's (or ours, as root): alive either way


def test_children_are_found_and_waited_for() -> None:
    children = [subprocess.Popen(SLEEP) for _ in range(2)]
    try:
        assert {child.pid for child in children} <= set(child_pids(os.getpid()))
        assert wait_gone([child.pid for child in children], 0.1) == [c.pid for c in children]
    finally:
        for child in children:
            child.kill()
    for child in children:
        child.wait()
    assert wait_gone([child.pid for child in children], 5) == []
