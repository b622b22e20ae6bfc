"""Run one build command so that it can touch nothing of the slave's but its own build directory.

Building a package runs its author's code. :class:`BubblewrapSandbox` confines that code with
bwrap: a read-only view of the system, the slave's own directories replaced by empty ones, a
private PID namespace, and the build directory as the only writable place. :class:`PlainSandbox`
is the fallback where bwrap is missing: a throwaway HOME and a session of its own, and no more.
Either way, a command that outlives its welcome is killed with every process it started.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DEFAULT_HIDDEN",
    "BubblewrapSandbox",
    "PlainSandbox",
    "RunResult",
    "Sandbox",
    "SandboxedProcess",
    "bubblewrap_works",
    "make_sandbox",
    "remove_tree",
]

log = logging.getLogger(__name__)

# Where a build could find something of ours or of another user's: each is replaced by an empty
# tmpfs inside bwrap. /tmp and /var/tmp also because other processes' sockets live there.
DEFAULT_HIDDEN: tuple[Path, ...] = tuple(
    Path(p)
    for p in ("/root", "/home", "/tmp", "/var/tmp", "/run/user", "/mnt", "/media")  # noqa: S108
)

# Only these of the slave's own variables reach a build: PATH to find compilers, the proxies to
# reach the index. Everything else (PIP_*, credentials, PYTHON*) stays out.
_PASSED_THROUGH = ("PATH", "http_proxy", "https_proxy", "no_proxy")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_POLL = 0.1  # seconds between checks of the deadline while a command runs
_DRAIN = 1.0  # seconds to keep reading output after the command exited
_OUTPUT_LIMIT = 32 * 1024 * 1024  # a build printing forever must not exhaust our memory


class RunResult(NamedTuple):
    """How a sandboxed command ended."""

    returncode: int  # negative: killed by that signal
    output: str  # stdout and stderr, interleaved as written
    killed: str | None  # why we killed it, or None if it ended by itself


class SandboxedProcess:
    """A command started by :meth:`Sandbox.start`, with every process it spawns.

    One thread calls :meth:`communicate`; any thread may call :meth:`kill`.
    """

    def __init__(self, popen: subprocess.Popen[bytes], grace: float) -> None:
        self._popen = popen
        self._grace = grace
        # Guards against signalling a process group after its leader was reaped, when the kernel
        # may already have handed the same number to an unrelated process.
        self._lock = threading.Lock()
        self._reaped = False
        self._kill_reason: str | None = None
        self._kill_at: float | None = None  # when SIGTERM turns into SIGKILL
        self._output = _OutputBuffer(_OUTPUT_LIMIT)

    @property
    def pid(self) -> int:
        """The process id of the command (of bwrap, under :class:`BubblewrapSandbox`)."""
        return self._popen.pid

    def kill(self, reason: str) -> None:
        """Terminate the whole process tree: SIGTERM now, SIGKILL after the grace period.

        Returns at once; :meth:`communicate` sends the SIGKILL and returns when all is gone.
        Only the first reason is kept.
        """
        with self._lock:
            if self._reaped or self._kill_reason is not None:
                return
            self._kill_reason = reason
            self._kill_at = time.monotonic() + self._grace
            _signal_tree(self._popen.pid, signal.SIGTERM)

    def communicate(
        self,
        timeout: float | None = None,
        *,
        watch: Callable[[], str | None] | None = None,
        watch_interval: float = 3.0,
    ) -> RunResult:
        """Collect the output until the command ends, killing it once *timeout* seconds pass,
        or when *watch* (asked every *watch_interval* seconds) gives a reason to."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_watch = time.monotonic() + watch_interval
        assert self._popen.stdout is not None
        fd = self._popen.stdout.fileno()
        os.set_blocking(fd, False)
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not self._exited():
                self._read(selector, _POLL)
                self._enforce(deadline, timeout)
                if watch is not None and time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + watch_interval
                    reason = watch()
                    if reason is not None:
                        self.kill(reason)
            self._reap()
            self._drain(selector)
        self._popen.stdout.close()
        return RunResult(self._popen.returncode, self._output.text(), self._kill_reason)

    def _exited(self) -> bool:
        # WNOWAIT leaves the leader a zombie, so its pid (our group id) stays ours until _reap.
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self._popen.pid, flags) is not None

    def _read(self, selector: selectors.BaseSelector, timeout: float) -> bool:
        """Read what is ready within *timeout*; False once the output is closed."""
        if not selector.get_map():
            time.sleep(timeout)
            return False
        for key, _ in selector.select(timeout):
            data = os.read(key.fd, 65536)
            if data:
                self._output.append(data)
            else:
                selector.unregister(key.fd)
        return bool(selector.get_map())

    def _enforce(self, deadline: float | None, timeout: float | None) -> None:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            self.kill(f"it exceeded its timeout of {timeout:g} seconds")
        with self._lock:
            if self._kill_at is not None and now >= self._kill_at:
                # Repeated on every poll: a fork bomb can start processes after the first scan.
                _signal_tree(self._popen.pid, signal.SIGKILL)

    def _reap(self) -> None:
        with self._lock:
            # Whatever the command left running in the background (a daemon, a stuck compiler)
            # goes with it: nothing of a build may outlive it.
            _signal_tree(self._popen.pid, signal.SIGKILL)
            self._popen.wait()
            self._reaped = True

    def _drain(self, selector: selectors.BaseSelector) -> None:
        # A process that escaped our group could hold the pipe open forever: read for a while only.
        until = time.monotonic() + _DRAIN
        while time.monotonic() < until and self._read(selector, _POLL):
            pass


class Sandbox(ABC):
    """How build commands run: subclasses decide the isolation around the command line."""

    #: True when the sandbox actually confines the build (shown in build logs).
    isolated: bool = False
    #: A few words for the build log.
    description: str = ""

    def __init__(self, *, hide: Iterable[Path] = (), grace: float = 5.0) -> None:
        """*hide*: more paths (the slave's work and config directories) a build must not see."""
        # "/" is the home of some service users; hiding it would hide the whole system.
        paths = [*DEFAULT_HIDDEN, Path.home(), *hide]
        self.hidden = tuple(dict.fromkeys(p for p in paths if p != Path("/")))
        self.grace = grace

    def start(
        self,
        argv: Sequence[str],
        *,
        build_dir: Path,
        env: Mapping[str, str] | None = None,
        readable: Iterable[Path] = (),
        hide: Iterable[Path] = (),
        before_exec: Callable[[], None] | None = None,
        tmpfs_size: int | None = None,
    ) -> SandboxedProcess:
        """Start *argv* in *build_dir*, which must exist and is the only place it may write.

        *readable* lists paths that must stay visible even inside hidden ones (the interpreter);
        *hide* adds to the paths given at construction for this command only.
        HOME and TMPDIR point inside *build_dir*; *env* adds variables on top of those.
        *before_exec* runs in the command's first process before it starts (its limits).
        *tmpfs_size* bounds each memory filesystem put over a hidden directory (/tmp among them,
        the one a build may write to), in bytes.
        """
        command = self.wrap(
            argv,
            build_dir=build_dir,
            readable=tuple(readable),
            hidden=tuple(dict.fromkeys([*self.hidden, *hide])),
            tmpfs_size=tmpfs_size,
        )
        popen = subprocess.Popen(
            command,
            cwd=build_dir,
            env=self.environment(build_dir, env or {}),
            stdin=subprocess.DEVNULL,  # a build that asks a question gets EOF, not a hung slave
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one stream keeps errors next to what caused them
            start_new_session=True,  # our signals reach the whole group, and no tty to abuse
            preexec_fn=before_exec,  # noqa: PLW1509 (only a write to an open fd, or a syscall)
        )
        return SandboxedProcess(popen, self.grace)

    def run(
        self,
        argv: Sequence[str],
        *,
        build_dir: Path,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        readable: Iterable[Path] = (),
        hide: Iterable[Path] = (),
    ) -> RunResult:
        """:meth:`start`, then wait for the end, killing the command after *timeout* seconds."""
        process = self.start(argv, build_dir=build_dir, env=env, readable=readable, hide=hide)
        return process.communicate(timeout)

    def environment(self, build_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
        """The complete environment of a command: built from scratch, never inherited whole."""
        env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
        env.setdefault("PATH", _DEFAULT_PATH)
        env["LANG"] = "C.UTF-8"  # logs in one encoding whatever the slave's locale
        home, tmp = build_dir / "home", build_dir / "tmp"
        home.mkdir(exist_ok=True)
        tmp.mkdir(exist_ok=True)
        # A throwaway HOME: whatever a setup script writes there (caches, ~/.bashrc edits) is
        # deleted with the build instead of persisting into the next one.
        env["HOME"] = str(home)
        # On the build's disk rather than a RAM tmpfs, and deleted with it.
        env["TMPDIR"] = str(tmp)
        env.update(extra)
        return env

    @abstractmethod
    def wrap(
        self,
        argv: Sequence[str],
        *,
        build_dir: Path,
        readable: tuple[Path, ...],
        hidden: tuple[Path, ...],
        tmpfs_size: int | None = None,
    ) -> list[str]:
        """The command line that runs *argv* inside this sandbox."""


class PlainSandbox(Sandbox):
    """No isolation: only a throwaway HOME and a session of its own, for hosts without bwrap."""

    isolated = False
    description = "none (no bubblewrap): only HOME is throwaway"

    def __init__(self, *, hide: Iterable[Path] = (), grace: float = 5.0) -> None:
        super().__init__(hide=hide, grace=grace)
        log.warning(
            "builds are NOT isolated (no bubblewrap sandbox): a build can read and write "
            "anything this user can, and a daemon it starts may outlive it"
        )

    def wrap(
        self,
        argv: Sequence[str],
        *,
        build_dir: Path,
        readable: tuple[Path, ...],
        hidden: tuple[Path, ...],
        tmpfs_size: int | None = None,
    ) -> list[str]:
        """*argv* unchanged."""
        del build_dir, readable, hidden, tmpfs_size
        return list(argv)


class BubblewrapSandbox(Sandbox):
    """Confines each command with bwrap; see the module docstring for what it sees."""

    isolated = True
    description = "bubblewrap: read-only system, private PID namespace, own dirs hidden"

    def wrap(
        self,
        argv: Sequence[str],
        *,
        build_dir: Path,
        readable: tuple[Path, ...],
        hidden: tuple[Path, ...],
        tmpfs_size: int | None = None,
    ) -> list[str]:
        """The bwrap command line around *argv*."""
        args = [*_bwrap_base(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        args += _mask_all(hidden, tmpfs_size)
        for path in readable:
            args += ["--ro-bind", str(path), str(path)]
        # Binding a readable directory uncovers what we hid inside it; hide that again.
        args += _mask_all((h for h in hidden if any(_inside(h, r) for r in readable)), tmpfs_size)
        args += ["--bind", str(build_dir), str(build_dir), "--chdir", str(build_dir), "--"]
        return args + list(argv)


def _bwrap_base() -> list[str]:
    return [
        "bwrap",
        # If the slave dies, so does the build, instead of running on unsupervised.
        "--die-with-parent",
        # A PID namespace dies with its first process: no build process can escape a kill by
        # daemonising. It also hides the slave's processes from the build.
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        # The network stays shared on purpose: pip must reach the index, possibly on 127.0.0.1.
        # Root inside must not be able to remount, ptrace, or override file permissions.
        "--cap-drop",
        "ALL",
    ]


def _mask_all(paths: Iterable[Path], tmpfs_size: int | None) -> list[str]:
    # a tmpfs is memory: unbounded, a build writing to /tmp could take the machine's
    size = ["--size", str(tmpfs_size)] if tmpfs_size else []
    args: list[str] = []
    for path in paths:
        if path.is_dir():
            args += [*size, "--tmpfs", str(path)]
        elif path.exists():
            # tmpfs can only cover a directory; an empty file covers a file (a config). Not
            # /dev/null: bwrap's mounts are nodev, so it would read as "permission denied".
            args += ["--ro-bind", str(_empty_file()), str(path)]
    return args


@functools.cache
def _empty_file() -> Path:
    fd, name = tempfile.mkstemp(prefix="piwheels-empty-")
    os.close(fd)
    path = Path(name)
    path.chmod(0o444)
    atexit.register(path.unlink, missing_ok=True)
    return path


def _inside(path: Path, parent: Path) -> bool:
    return path != parent and path.is_relative_to(parent)


@functools.cache
def bubblewrap_works() -> bool:
    """Whether bwrap is installed and can create our namespaces here (probed once)."""
    if shutil.which("bwrap") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = BubblewrapSandbox()
        command = sandbox.wrap(["true"], build_dir=Path(tmp), readable=(), hidden=sandbox.hidden)
        try:
            proc = subprocess.run(command, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("bubblewrap is installed but cannot run: %s", exc)
            return False
    if proc.returncode != 0:
        log.warning(
            "bubblewrap is installed but fails here: %s", proc.stderr.decode(errors="replace")
        )
    return proc.returncode == 0


def make_sandbox(*, hide: Iterable[Path] = (), grace: float = 5.0) -> Sandbox:
    """The best sandbox this host supports: bwrap if it works, else none (with a warning)."""
    if bubblewrap_works():
        return BubblewrapSandbox(hide=hide, grace=grace)
    return PlainSandbox(hide=hide, grace=grace)


def remove_tree(path: Path) -> None:
    """Delete *path*, even where a build took away its own write or search permissions."""

    def retry(func: Callable[..., object], name: str, _exc: object) -> None:
        for target in (Path(name).parent, Path(name)):
            # Never through a symlink: a build could point one at a file of ours.
            if target.is_dir() and not target.is_symlink():
                target.chmod(0o700)
        func(name)

    if not path.exists() and not path.is_symlink():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


def _signal_tree(leader: int, sig: signal.Signals) -> None:
    """Send *sig* to the process group of *leader* and to any member that left it."""
    # Listed first: once the leader dies its children are re-parented and no longer look like
    # its descendants.
    members = _members(leader)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _members(leader: int) -> set[int]:
    """Processes in the session or group of *leader*, and every descendant of those.

    Descendants matter because a process may call setsid() to leave our group; without bwrap's
    PID namespace, one that also re-parents itself (a double fork) still escapes.
    """
    table = _process_table()
    members = {pid for pid, (_, pgid, sid) in table.items() if leader in (pgid, sid)}
    members.add(leader)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    pending = deque(members)
    while pending:
        for child in children.get(pending.popleft(), []):
            if child not in members:
                members.add(child)
                pending.append(child)
    members.discard(os.getpid())
    return members


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgid, sid) for every process we can see."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone since the scan
        # The command name is in parentheses and may itself contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


class _OutputBuffer:
    """Keeps all of an output up to *limit* bytes; beyond that, its start and its end."""

    def __init__(self, limit: int) -> None:
        self._half = limit // 2
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._dropped = 0

    def append(self, data: bytes) -> None:
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail.append(data)
            self._tail_size += len(data)
            while self._tail_size - len(self._tail[0]) >= self._half:
                removed = self._tail.popleft()
                self._tail_size -= len(removed)
                self._dropped += len(removed)

    def text(self) -> str:
        head = self._head.decode("utf-8", "replace")
        tail = b"".join(self._tail).decode("utf-8", "replace")
        if not self._dropped:
            return head + tail
        return f"{head}\n[... {self._dropped} bytes of output omitted ...]\n{tail}"
