"""The directory a slave builds in: held for as long as the slave runs, and what earlier runs
left behind removed when it starts.

A slave killed with SIGKILL (or on a machine that lost power) never removes its directory; each
left a temporary tree of half-built projects in /tmp. Each slave holds an flock on a file in
its directory, which the kernel lets go when the process dies however it dies: a directory
whose lock can be taken belongs to no live slave.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path

from piwheels.slave.build_volume import IMAGE_SUFFIX, unmount_all_under
from piwheels.slave.sandbox import remove_tree

log = logging.getLogger(__name__)

LOCK_NAME = ".piw-slave.lock"
TEMPORARY_PREFIX = "piw-slave-"  # a work root made for one run, removed at its end
BUILD_PREFIX = "build-"  # one build's directory below the work root


class WorkRootBusy(Exception):
    """Another running slave builds in this directory."""


class WorkRoot:
    """A work root, locked by this process until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = _try_lock(path)
        if self._fd is None:
            raise WorkRootBusy(f"another slave is building in {path}")

    @classmethod
    def temporary(cls) -> WorkRoot:
        """A new directory in the system's temporary directory, after removing those of slaves
        that died without removing theirs."""
        remove_abandoned_roots(Path(tempfile.gettempdir()))
        return cls(Path(tempfile.mkdtemp(prefix=TEMPORARY_PREFIX)))

    def remove_leftover_builds(self) -> list[Path]:
        """Delete build directories of earlier runs (only this process holds the lock), with the
        filesystems mounted on them."""
        unmount_all_under(self.path)
        removed = []
        for build in self.path.glob(f"{BUILD_PREFIX}*"):
            if build.name.endswith(IMAGE_SUFFIX):
                build.unlink()
                continue
            remove_tree(build)
            removed.append(build)
        if removed:
            log.warning("removed %d build directories left by an earlier run", len(removed))
        return removed

    def release(self, *, remove: bool = False) -> None:
        if remove:
            unmount_all_under(self.path)
            remove_tree(self.path)
        if self._fd is not None:
            os.close(self._fd)  # closing lets go of the lock
            self._fd = None


def remove_abandoned_roots(temp: Path) -> list[Path]:
    """Delete the temporary work roots in *temp* that are ours and that no live slave holds."""
    removed = []
    for root in temp.glob(f"{TEMPORARY_PREFIX}*"):
        try:
            if root.is_symlink() or not root.is_dir() or root.stat().st_uid != os.geteuid():
                continue
        except OSError:
            continue
        fd = _try_lock(root, create=False)
        if fd is None:
            continue  # a running slave's (or one made before slaves held a lock: not judged)
        try:
            unmount_all_under(root)
            remove_tree(root)
            removed.append(root)
        except OSError as exc:
            log.warning("cannot remove %s, left by an earlier slave: %s", root, exc)
        finally:
            os.close(fd)
    if removed:
        log.warning("removed %d work directories of slaves that did not stop", len(removed))
    return removed


def _try_lock(root: Path, *, create: bool = True) -> int | None:
    """An open descriptor holding *root*'s lock, or None if a live process holds it (or, unless
    *create*, there is no lock file)."""
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
    try:
        fd = os.open(root / LOCK_NAME, flags, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
