"""The original piwheels (0.23) build slave as a real peer, for tests of issue #18.

Operators run fleets of the original ``piw-slave``; our master must let them join unchanged. This
module runs one: the original's own code, installed from the fixture tarball (never copied into
the project) into a virtualenv of Debian's ``/usr/bin/python3``, the only interpreter that can
import the ``apt`` module (python3-apt) it finds a wheel's apt dependencies with.

* :func:`install_original_slave` makes that virtualenv, once per machine, under ``.cache/`` keyed
  by the tarball's sha256. It needs PyPI; ``scripts/fetch-build-deps`` runs it (through this
  file's ``install`` command) so that the tests run offline.
* :func:`original_slave_venv` only finds and checks it, skipping the test with the reason when it
  is missing.
* :class:`OriginalSlave` runs its ``piw-slave`` as an unprivileged user (the original refuses
  root), in a process group of its own, stopped by that group's id alone.
* :func:`loopback_host` picks an address for the master: the original connects to the fixed ports
  5555 and 5556 of ``--master``, so each test binds its master on a loopback address of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

REPO = Path(__file__).resolve().parent.parent

#: The original piwheels' source, a ``git archive`` of the 0.23 release (BSD licence).
TARBALL = Path(
    os.environ.get(
        "PIWHEELS_ORIGINAL_TARBALL", "/work/shared/fixtures/piwheels-0.23-4df6188.tar.gz"
    )
)
CACHE_DIR = REPO / ".cache" / "original-slave"

#: Debian's interpreter: python3-apt is a Debian package, built for it alone.
DEBIAN_PYTHON = Path("/usr/bin/python3")

#: Installed beside the tarball's ``piwheels[slave]``, whose own bookworm pins
#: (requirements_bookworm.txt) constrain the rest. cbor2 is not pinned there, and cbor2 6 calls
#: a tag hook as (tag, immutable) where the original's expects (decoder, tag).
EXTRA_REQUIREMENTS = ("cbor2<6",)

#: The ports the original slave connects to on ``--master``: fixed, only the host can be chosen.
SLAVE_PORT = 5555
FILE_PORT = 5556

USER_NAME = "piwtest-original"

#: pip must not leave the test index: the original hard-codes https://www.piwheels.org/simple as
#: an extra index, so https goes through a proxy that refuses at once (the index is http).
DEAD_PROXY = "http://127.0.0.1:9"


class Unavailable(Exception):
    """This machine cannot run the original slave; the message says why."""


# The virtualenv ------------------------------------------------------------------------------


@functools.cache
def tarball_sha256(path: Path = TARBALL) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _debian_python_problem() -> str | None:
    if not DEBIAN_PYTHON.exists():
        return f"no Debian python3 at {DEBIAN_PYTHON}"
    # ensurepip is missing from Debian's python3 without python3-venv.
    checked = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import apt, ensurepip"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    if checked.returncode:
        last = (checked.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"Debian's {DEBIAN_PYTHON} cannot import apt and ensurepip ({last}): "
            "install python3-apt and python3-venv"
        )
    return None


def _debian_python_version() -> str:
    # The venv links to this interpreter by path: another python3 (a Debian upgrade) needs
    # another venv.
    return DEBIAN_PYTHON.resolve().name


def _key_dir() -> Path:
    return CACHE_DIR / tarball_sha256()[:16]


def _expected_stamp() -> str:
    return "".join(
        f"{line}\n"
        for line in (
            f"tarball {tarball_sha256()}",
            f"python {_debian_python_version()}",
            *(f"requirement {req}" for req in EXTRA_REQUIREMENTS),
        )
    )


def _stamp_path() -> Path:
    return _key_dir() / "installed"


def _prerequisites() -> None:
    if not TARBALL.is_file():
        raise Unavailable(f"no original piwheels tarball at {TARBALL} (PIWHEELS_ORIGINAL_TARBALL)")
    problem = _debian_python_problem()
    if problem:
        raise Unavailable(problem)


def _check_venv(venv: Path, *, as_user: User | None = None) -> subprocess.CompletedProcess[str]:
    # Importing piwheels.slave imports everything piw-slave needs to start, apt included.
    script = (
        "import apt, piwheels.slave, importlib.metadata as m; "
        "v = m.version('cbor2'); "
        "assert int(v.split('.')[0]) < 6, 'cbor2 ' + v; "
        "print(m.version('piwheels'))"
    )
    command = [str(venv / "bin" / "python"), "-c", script]
    if as_user is not None:
        command = [*as_user.run_as(), *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/"},
    )


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    # Two runs of fetch-build-deps at once must not build one venv together.
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install_original_slave(*, force: bool = False) -> Path:
    """Make (once) the original slave's virtualenv and return it. Needs PyPI.

    Raises :exc:`Unavailable` where the machine lacks what it needs, and
    :exc:`subprocess.CalledProcessError` where an install step fails.
    """
    _prerequisites()
    key_dir = _key_dir()
    venv = key_dir / "venv"
    # The unprivileged user reads this venv, whatever the umask of whoever installs it.
    os.umask(0o022)
    with _install_lock():
        stamp = _stamp_path()
        if not force and stamp.exists() and stamp.read_text() == _expected_stamp():
            return venv
        # A venv cannot move (its scripts name their interpreter by path), so it is made in
        # place; the stamp, written last, says that it is whole.
        shutil.rmtree(key_dir, ignore_errors=True)
        key_dir.mkdir(parents=True)
        for directory in (CACHE_DIR, key_dir):
            directory.chmod(0o755)
        subprocess.run(
            [str(DEBIAN_PYTHON), "-m", "venv", "--system-site-packages", str(venv)],
            check=True,
        )
        with tempfile.TemporaryDirectory(prefix="piwtest-original-src-") as unpacked:
            source = Path(unpacked)
            with tarfile.open(TARBALL) as archive:
                archive.extractall(source, filter="data")
            subprocess.run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--no-input",
                    "--disable-pip-version-check",
                    "--constraint",
                    str(source / "requirements_bookworm.txt"),
                    *EXTRA_REQUIREMENTS,
                    # pip and wheel: the original builds with the pip of the venv it runs in
                    f"{source}[slave]",
                ],
                check=True,
                stdin=subprocess.DEVNULL,
            )
        checked = _check_venv(venv)
        if checked.returncode:
            raise Unavailable(f"the venv at {venv} is broken: {checked.stderr.strip()}")
        fd, tmp = tempfile.mkstemp(dir=key_dir, prefix=".stamp-")
        with os.fdopen(fd, "w") as out:
            out.write(_expected_stamp())
        Path(tmp).chmod(0o644)
        Path(tmp).replace(stamp)
    return venv


@functools.cache
def _checked_venv() -> Path:
    _prerequisites()
    venv = _key_dir() / "venv"
    stamp = _stamp_path()
    if not stamp.exists() or stamp.read_text() != _expected_stamp():
        raise Unavailable(
            f"the original slave is not installed in {venv.parent}: run scripts/fetch-build-deps "
            "(once, with access to PyPI)"
        )
    checked = _check_venv(venv)
    if checked.returncode:
        raise AssertionError(f"the original slave's venv at {venv} is broken:\n{checked.stderr}")
    user = slave_user()
    if user.uid != os.geteuid():
        checked = _check_venv(venv, as_user=user)
        if checked.returncode:
            raise Unavailable(
                f"{user.name} cannot use the venv at {venv} (is a directory above it private?): "
                f"{checked.stderr.strip()}"
            )
    return venv


def original_slave_venv() -> Path:
    """The original slave's virtualenv, ready and readable by :func:`slave_user`; the test is
    skipped, with the reason, where it cannot be."""
    try:
        return _checked_venv()
    except Unavailable as exc:
        pytest.skip(str(exc))


# The unprivileged user -----------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def run_as(self) -> list[str]:
        """A command prefix that runs what follows as this user (nothing when we already are).

        setpriv execs the command, so the pid we start is the slave's own.
        """
        if self.uid == os.geteuid():
            return []
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]


@functools.cache
def slave_user() -> User:
    """The user the original slave runs as: ``piwtest-original`` (made here if need be) when the
    tests run as root, otherwise whoever runs them."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return User(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(USER_NAME)
    except KeyError:
        made = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                USER_NAME,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            # Another test session may have made it at the same moment; that is as good.
            entry = pwd.getpwnam(USER_NAME)
        except KeyError:
            raise Unavailable(f"cannot create user {USER_NAME}: {made.stderr.strip()}") from None
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid)


# Addresses -----------------------------------------------------------------------------------


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def loopback_host() -> str:
    """A loopback address (127.x.y.z, never 127.0.0.1) whose ports 5555 and 5556 are free now.

    Any 127.0.0.0/8 address is this machine's on Linux, so tests running at once each get their
    own pair of the original's fixed ports.
    """
    rng = random.SystemRandom()
    for _ in range(100):
        host = f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(2, 255)}"
        if all(_free(host, port) for port in (SLAVE_PORT, FILE_PORT)):
            return host
    raise AssertionError("no loopback address with ports 5555 and 5556 free")


# The slave -----------------------------------------------------------------------------------


def _duration(value: timedelta) -> str:
    # The original parses --timeout as a time of day (dateutil) and subtracts midnight.
    seconds = int(value.total_seconds())
    if not 0 < seconds < 86400:
        raise ValueError(f"the original slave's --timeout must be within a day: {value!r}")
    return f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}"


class OriginalSlave:
    """The original ``piw-slave``, run as :func:`slave_user` against the master on *master*.

    :param master: the host (an address from :func:`loopback_host`) whose ports 5555 and 5556
        the master binds.
    :param label: what the slave tells the master it is called.
    :param timeout: the build timeout it announces in HELLO (the original never enforces it).
    :param debug: log every message on its sockets (the original logs their raw CBOR).
    :param env: more environment variables for the slave and the pip it runs.
    :param parent: where its working directory goes (default: the system's temporary
        directory); the user must be able to reach it, which pytest's ``tmp_path`` under root is
        not.

    Start it with ``with`` (or :meth:`start`); leaving the block stops it and removes its
    directory, after keeping its log for :meth:`log`.
    """

    def __init__(
        self,
        master: str,
        *,
        label: str = "original",
        timeout: timedelta = timedelta(minutes=15),
        debug: bool = True,
        env: Mapping[str, str] | None = None,
        parent: Path | None = None,
    ) -> None:
        self.master = master
        self.label = label
        self.timeout = timeout
        self.debug = debug
        self.extra_env = dict(env or {})
        self.parent = parent
        self.venv = original_slave_venv()
        try:
            self.user = slave_user()
        except Unavailable as exc:
            pytest.skip(str(exc))
        self.work: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._kept: tuple[str, str] | None = None

    # Paths in the slave's working directory, which belongs to its user.

    def _path(self, name: str) -> Path:
        assert self.work is not None, "the slave has not been started"
        return self.work / name

    @property
    def home(self) -> Path:
        return self._path("home")

    @property
    def build_dir(self) -> Path:
        """The ``--dir`` it builds in."""
        return self._path("build")

    @property
    def log_path(self) -> Path:
        """Its ``--log-file``: time, logger and level on every line."""
        return self._path("slave.log")

    @property
    def output_path(self) -> Path:
        """Its stdout and stderr: the console log, and what fails before logging starts."""
        return self._path("console.log")

    def environment(self) -> dict[str, str]:
        """The slave's whole environment: none of ours, for neither pip nor the original should
        see the test run's settings."""
        assert self.work is not None
        env = {
            # pip3 is run by name: it must be the venv's, the pip of the interpreter the slave
            # runs on.
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "USER": self.user.name,
            "LOGNAME": self.user.name,
            "TMPDIR": str(self._path("tmp")),
            # The original sets its locale from the environment and fails on one not installed.
            "LANG": "C.UTF-8",
            # No configuration file of this machine's (find-links, other indexes) reaches pip.
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_CACHE_DIR": "1",
            "PIP_RETRIES": "0",
            "https_proxy": DEAD_PROXY,
            "HTTPS_PROXY": DEAD_PROXY,
            "no_proxy": "localhost,127.0.0.1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(self.extra_env)
        env.pop("LD_PRELOAD", None)  # see command()
        return env

    def command(self) -> list[str]:
        # A library preloaded into the slave (libfaketime) must not load into setpriv, which
        # runs as root: its state would be root's, and the slave's user could not reach it.
        preload = self.extra_env.get("LD_PRELOAD")
        return [
            *self.user.run_as(),
            *(["/usr/bin/env", f"LD_PRELOAD={preload}"] if preload else []),
            str(self.venv / "bin" / "piw-slave"),
            "--master",
            self.master,
            "--dir",
            str(self.build_dir),
            "--label",
            self.label,
            "--timeout",
            _duration(self.timeout),
            "--log-file",
            str(self.log_path),
            "--debug" if self.debug else "--verbose",
        ]

    def start(self) -> Self:
        assert self.process is None, "already started"
        self.work = Path(tempfile.mkdtemp(prefix="piwtest-original-", dir=self.parent))
        for name in ("home", "build", "tmp"):
            self._path(name).mkdir()
        for path in (self.work, self.home, self.build_dir, self._path("tmp")):
            os.chown(path, self.user.uid, self.user.gid)
        with self.output_path.open("wb") as output:
            # A session of its own: stop() signals that process group and nothing else.
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.home,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "the slave has not been started"
        return self.process.pid

    def exited(self) -> bool:
        """Whether the slave's process has ended, without reaping it: while it is a zombie its
        pid, which is its process group's id, cannot be reused."""
        result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return result is not None

    def wait_exited(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def uids(self) -> tuple[int, ...]:
        """Its real, effective, saved and filesystem uids, from /proc."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        return tuple(int(field) for field in line.split()[1:])

    def group_alive(self) -> bool:
        """Whether any process is left in the slave's process group."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the slave's process group: SIGTERM, then SIGKILL after *timeout* seconds.

        Returns the slave's exit status (None when it was never started).
        """
        if self.process is None:
            return None
        if self.process.returncode is None:
            if not self.exited():
                os.killpg(self.pid, signal.SIGTERM)
                if not self.wait_exited(timeout):
                    os.killpg(self.pid, signal.SIGKILL)
            self.wait_exited(30)
            # Anything it left in its group (a pip build) goes while its zombie still holds the
            # group's id; only then is it reaped.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()
        # Orphans are reaped by init, a moment later.
        deadline = time.monotonic() + 30
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.process.returncode

    def log(self) -> str:
        """Its log file's text (kept after the slave's directory has gone)."""
        if self._kept is not None:
            return self._kept[0]
        return _read(self.log_path)

    def output(self) -> str:
        """Its stdout and stderr (kept after the slave's directory has gone)."""
        if self._kept is not None:
            return self._kept[1]
        return _read(self.output_path)

    def close(self) -> None:
        self.stop()
        if self.work is not None and self._kept is None:
            self._kept = (self.log(), self.output())
            shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# Installing from the command line (scripts/fetch-build-deps) -----------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Install, once, the original piwheels slave for the tests (needs PyPI)."
    )
    parser.add_argument("command", choices=["install"])
    parser.add_argument("--force", action="store_true", help="install again even if stamped")
    args = parser.parse_args(argv)
    try:
        venv = install_original_slave(force=args.force)
    except Unavailable as exc:
        # Not a failure: its tests skip, with this reason, on such a machine.
        print(f"original-slave: not installed: {exc}", file=sys.stderr)
        return 0
    except subprocess.CalledProcessError as exc:
        print(
            f"original-slave: {exc.cmd[0]} failed (exit status {exc.returncode}); "
            "is PyPI reachable?",
            file=sys.stderr,
        )
        return 1
    print(f"original-slave: piw-slave 0.23 in {venv}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
