"""A slave's work directory is its own while it runs, and cleaned of what dead slaves left."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.slave.build_volume import BuildVolume, mount_points
from piwheels.slave.work_root import (
    LOCK_NAME,
    TEMPORARY_PREFIX,
    WorkRoot,
    WorkRootBusy,
    remove_abandoned_roots,
)

# A process that holds a work root's lock until its stdin closes, as a live slave would.
HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder() -> Iterator[callable]:
    started: list[subprocess.Popen[str]] = []

    def hold(root: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(root / LOCK_NAME)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline() == "held\n"
        started.append(process)
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


def make_root(temp: Path, name: str, *, lock: bool = True) -> Path:
    root = temp / f"{TEMPORARY_PREFIX}{name}"
    (root / "build-abc" / "src").mkdir(parents=True)
    if lock:
        (root / LOCK_NAME).touch()
    return root


def test_the_roots_of_dead_slaves_are_removed(tmp_path: Path, holder: callable) -> None:
    dead = make_root(tmp_path, "dead")
    killed = make_root(tmp_path, "killed")
    holder(killed).kill()  # SIGKILL: the kernel lets go of its lock
    live = make_root(tmp_path, "live")
    holder(live)
    unknown = make_root(tmp_path, "older", lock=False)  # not judged: no lock to go by
    assert sorted(remove_abandoned_roots(tmp_path)) == sorted([dead, killed])
    assert not dead.exists() and not killed.exists()
    assert live.exists() and unknown.exists()


def test_a_root_another_slave_holds_is_refused(tmp_path: Path, holder: callable) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    holder(root)
    with pytest.raises(WorkRootBusy):
        WorkRoot(root)


def test_leftover_builds_go_and_the_lock_is_let_go(tmp_path: Path) -> None:
    root = WorkRoot(tmp_path / "work")
    (root.path / "build-1234" / "x").mkdir(parents=True)
    (root.path / "cache").mkdir()
    assert root.remove_leftover_builds() == [root.path / "build-1234"]
    assert (root.path / "cache").exists()
    root.release()
    WorkRoot(tmp_path / "work").release(remove=True)  # free again once released
    assert not (tmp_path / "work").exists()


needs_mounting = pytest.mark.skipif(os.geteuid() != 0, reason="a build's own filesystem needs root")


@needs_mounting
def test_the_filesystems_of_leftover_builds_are_unmounted(tmp_path: Path) -> None:
    root = WorkRoot(tmp_path / "work")
    build = root.path / "build-5678"
    build.mkdir()
    volume = BuildVolume(build, 16 << 20)  # as a slave killed mid-build leaves it
    (build / "tmp").mkdir()
    assert build in mount_points() and volume.image.exists()
    assert root.remove_leftover_builds() == [build]
    assert build not in mount_points()
    assert sorted(root.path.iterdir()) == [root.path / LOCK_NAME]  # image and directory gone
    root.release()
