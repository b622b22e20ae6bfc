"""What one build may use: memory, disk, CPUs (its wall time is the build timeout).

The original piwheels' builders suffer from builds that exhaust the machine: a full /tmp, the
kernel's OOM killer taking the builder with the build. Each build here gets:

- **memory**: a cgroup of its own with a memory limit, where the slave can make one (cgroup v2
  with the memory controller delegated to it, or the v1 memory hierarchy, writable as root);
  otherwise an address-space rlimit (RLIMIT_AS), which programs that reserve much more than
  they use can trip early. The slave's log says which.
- **disk**: the build directory (with the build's TMPDIR and HOME) is a filesystem of the limit's
  size (build_volume.py) where the slave can mount one; otherwise it is measured every few
  seconds and the build killed past the limit, which a build can overshoot by what it writes
  between two looks. The memory filesystems the sandbox puts over hidden directories (its /tmp
  among them) are each bounded by the smaller of the disk limit and a quarter of the memory
  limit.
- **CPUs**: the build's processes pinned to that many CPUs, and the common build tools told to
  run that many jobs (MAKEFLAGS, CMAKE_BUILD_PARALLEL_LEVEL, CARGO_BUILD_JOBS).

A build past a limit fails with the matching cause (out-of-memory, disk-full): the lines this
module adds to its log name the limit.
"""

from __future__ import annotations

import itertools
import logging
import os
import resource
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
DISK_CHECK_INTERVAL = 3.0  # seconds between measurements of a build's directory


class Limits(NamedTuple):
    memory: int | None = None  # bytes; None: unlimited
    disk: int | None = None  # bytes under the build directory
    cpus: int | None = None

    @property
    def tmpfs_size(self) -> int | None:
        """The bound of each memory filesystem in a build's sandbox: its pages are memory."""
        bounds = [b for b in (self.disk, self.memory and self.memory // 4) if b]
        return min(bounds) if bounds else None

    def describe(self) -> str:
        parts = [
            f"memory {_size(self.memory)}",
            f"disk {_size(self.disk)}",
            f"/tmp {_size(self.tmpfs_size)}",  # noqa: S108 (words, not a path)
            f"{self.cpus} CPUs" if self.cpus else "every CPU",
        ]
        return ", ".join(parts)


NO_LIMITS = Limits()


def _size(count: int | None) -> str:
    return "unlimited" if count is None else f"{count / (1 << 20):,.0f} MB"


class MemoryCage:
    """The memory limit of one build: set up before it starts, checked after it ends."""

    how = "none"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def before_exec(self) -> None:
        """Run in the build's first process, before it execs (subprocess's preexec_fn)."""

    def exceeded(self) -> bool:
        return False

    def close(self) -> None:
        pass


class RlimitCage(MemoryCage):
    how = "an address-space rlimit (RLIMIT_AS)"

    def before_exec(self) -> None:
        resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))


class CgroupCage(MemoryCage):
    """A cgroup of the build's own under *parent*, v2 (memory.max) or v1 (memory.limit_in_bytes)."""

    def __init__(self, limit: int, parent: Path, version: int) -> None:
        super().__init__(limit)
        self.version = version
        self.how = f"a cgroup v{version} of its own"
        self.path = parent / f"piwheels-build-{uuid.uuid4().hex[:12]}"
        self.path.mkdir()
        if version == 2:
            (self.path / "memory.max").write_text(str(limit))
            swap = self.path / "memory.swap.max"
            if swap.exists():  # or a build past its limit would only slow to a crawl
                swap.write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            memsw = self.path / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # swap counted too, or a build would only slow to a crawl
                memsw.write_text(str(limit))
        # opened now: before_exec runs between fork and exec, where little is safe
        self._procs = os.open(self.path / "cgroup.procs", os.O_WRONLY)

    def before_exec(self) -> None:
        os.write(self._procs, b"0")  # "0": the writing process itself

    def exceeded(self) -> bool:
        counters = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            lines = (self.path / counters).read_text().splitlines()
        except OSError:
            return False
        return any(
            len(fields) == 2 and fields[0] == "oom_kill" and fields[1] != "0"
            for fields in (line.split() for line in lines)
        )

    def close(self) -> None:
        os.close(self._procs)
        try:
            self.path.rmdir()  # empty once every process of the build is gone
        except OSError as exc:
            log.warning("cannot remove the build's cgroup %s: %s", self.path, exc)


def memory_cages(limit: int | None) -> tuple[Callable[[], MemoryCage] | None, str]:
    """A maker of each build's memory cage, and how builds are limited (for the log)."""
    if limit is None:
        return None, "no memory limit"
    parent = _cgroup_parent()
    if parent is not None:
        where, version = parent
        try:
            CgroupCage(limit, where, version).close()  # can we, really?
        except OSError as exc:
            log.debug("no cgroup for builds under %s: %s", where, exc)
        else:
            return (lambda: CgroupCage(limit, where, version)), f"a cgroup v{version} per build"
    return (lambda: RlimitCage(limit)), "an address-space rlimit (no cgroup could be made)"


def _cgroup_parent() -> tuple[Path, int] | None:
    """Where this process may make child cgroups with a memory limit: v2 first, then v1."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if number == "0" and (CGROUP_ROOT / "cgroup.controllers").exists():
            own = CGROUP_ROOT / path.lstrip("/")
            if "memory" in (own / "cgroup.subtree_control").read_text().split():
                return own, 2
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            own = CGROUP_ROOT / "memory" / path.lstrip("/")
            if (own / "memory.limit_in_bytes").exists() and os.access(own, os.W_OK):
                return own, 1
    return None


_PINNED = itertools.count()  # builds pinned by this process so far


def cpu_pinning(cpus: int | None) -> tuple[Callable[[], None] | None, dict[str, str]]:
    """What pins a build to *cpus* CPUs, and the variables that tell build tools so.

    Builds take the CPUs in turn, starting from one that depends on the process: pinned to
    the first CPUs, every slave of a machine (one per Python) built on the same ones while
    the others idled.
    """
    if not cpus:
        return None, {}
    available = sorted(os.sched_getaffinity(0))
    start = (os.getpid() + next(_PINNED) * cpus) % len(available)
    chosen = {available[(start + n) % len(available)] for n in range(min(cpus, len(available)))}
    jobs = str(len(chosen))
    env = {"MAKEFLAGS": f"-j{jobs}", "CMAKE_BUILD_PARALLEL_LEVEL": jobs, "CARGO_BUILD_JOBS": jobs}
    return (lambda: os.sched_setaffinity(0, chosen)), env


def disk_used(path: Path) -> int:
    """Bytes under *path*, without following links (a build's symlink to / counts nothing)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total
