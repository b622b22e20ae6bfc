"""A filesystem of its own for each build: the disk limit as a hard limit.

A build's directory (with its HOME and TMPDIR) is an ext4 filesystem of the limit's size, made
in a sparse image file beside it and loop-mounted on it: a build that writes past the limit
gets "No space left on device" at once, instead of being killed some seconds later, and cannot
fill the disk the slave and its other builds share. Mounting needs root (the slave as root, as
bubblewrap's sandbox lets it be); a slave that cannot mount measures the build's directory
instead (limits.disk_used), and its log says which.

The image is sparse, so a build takes only the space it writes; no journal, since nothing in a
build's directory needs to survive a crash of the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

IMAGE_SUFFIX = ".img"
MKFS_OPTIONS = ["-q", "-F", "-m", "0", "-O", "^has_journal"]
MOUNT_OPTIONS = "loop,nosuid,nodev"
_COMMAND_TIMEOUT = 60.0  # seconds; mkfs and mount take a few hundredths

# from <sched.h> and <sys/mount.h>
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_SLAVE = 1 << 19


class VolumeError(OSError):
    """A build's filesystem could not be made, mounted or unmounted."""


class BuildVolume:
    """A filesystem of *size* bytes mounted on the (empty) directory *mount_point*."""

    def __init__(self, mount_point: Path, size: int) -> None:
        self.mount_point = mount_point
        self.size = size
        self.image = mount_point.with_name(mount_point.name + IMAGE_SUFFIX)
        with self.image.open("xb") as image:
            image.truncate(size)
        try:
            owner = f"root_owner={os.getuid()}:{os.getgid()}"
            _run(["mkfs.ext4", *MKFS_OPTIONS, "-E", owner, str(self.image)])
            _run(["mount", "-o", MOUNT_OPTIONS, str(self.image), str(mount_point)])
        except VolumeError:
            self.image.unlink()
            raise
        with contextlib.suppress(OSError):
            (mount_point / "lost+found").rmdir()  # e2fsck's, not the build's business

    def release(self) -> None:
        """Unmount the filesystem (with everything on it) and delete its image."""
        unmount(self.mount_point)
        self.image.unlink(missing_ok=True)


def own_mount_namespace() -> str | None:
    """Move this process into a mount namespace of its own, so that the filesystems of its
    builds go when it goes, however it goes (a slave killed with SIGKILL would otherwise leave
    them mounted, and its directory impossible to delete). Mounts made on the host later still
    reach it; its own never reach the host. None if done, else why not.

    Only while the process has one thread: a mount namespace belongs to a thread, and the
    others would stay behind."""
    if os.geteuid() != 0:
        return "mounting needs root"
    if threading.active_count() != 1:
        return "the process already runs other threads"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        return f"unshare: {os.strerror(ctypes.get_errno())}"
    if libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None) != 0:
        return f"mount --make-rslave /: {os.strerror(ctypes.get_errno())}"
    return None


def volumes_possible(work_root: Path) -> str | None:
    """Why builds under *work_root* cannot have filesystems of their own, or None if they can
    (tried once, with a small one)."""
    if os.geteuid() != 0:
        return "mounting needs root"
    missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        return f"no {', '.join(missing)} on PATH"
    probe = work_root / f"volume-probe-{os.getpid()}"
    try:
        probe.mkdir()
        BuildVolume(probe, 8 << 20).release()
    except OSError as exc:
        return str(exc)
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return None


def unmount(mount_point: Path) -> None:
    """Unmount *mount_point*; lazily if a process still holds it (a killed build's last
    process, on its way out), so the caller can go on."""
    try:
        _run(["umount", str(mount_point)])
    except VolumeError:
        _run(["umount", "--lazy", str(mount_point)])


def unmount_all_under(root: Path) -> list[Path]:
    """Unmount every filesystem mounted below *root* (those of builds of a slave that died
    without cleaning up), deepest first; the mount points unmounted."""
    inside = sorted(
        (point for point in mount_points() if root in point.parents),
        key=lambda point: len(point.parts),
        reverse=True,
    )
    done = []
    for point in inside:
        try:
            unmount(point)
        except VolumeError as exc:
            log.warning("cannot unmount %s, left by an earlier build: %s", point, exc)
        else:
            done.append(point)
    return done


def mount_points() -> list[Path]:
    """Where this process sees filesystems mounted (from /proc/self/mountinfo)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    # the fifth field is the mount point, with space, tab, newline and backslash in octal
    return [Path(_unescape(line.split(" ")[4])) for line in lines if line.count(" ") >= 4]


def _unescape(field: str) -> str:
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VolumeError(f"{command[0]} failed: {exc}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise VolumeError(f"{command[0]} failed: {said[-1] if said else done.returncode}")
