"""A private PostgreSQL server in a directory of its own: the master's zero-set-up database.

:class:`EmbeddedPostgres` creates a cluster in its data directory on first start (``initdb``),
starts it listening on a unix socket only (no TCP port, so nothing to collide with and nothing
reachable from the network), and stops it on request. A second start on the same directory reuses
the cluster, so a restarted master finds its database as it left it.

The PostgreSQL programs come from the ``pgserver`` package when it is installed (a relocatable
PostgreSQL 16 inside the wheel) and otherwise from the system's installation. We drive ``initdb``
and ``pg_ctl`` ourselves rather than through ``pgserver.get_server``: that keeps one code path for
both sources, lets :meth:`EmbeddedPostgres.stop` guarantee that no server process survives, and
avoids pgserver's per-process bookkeeping, under which a master killed with SIGKILL leaves an entry
that stops any later cleanup from stopping the server.

PostgreSQL refuses to run as root. When we are root the server runs as an unprivileged system
account (the data directory's owner, or ``postgres``, ``pgserver`` or ``nobody``), which also owns
the data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

logger = logging.getLogger("piwheels.db.embedded")

#: The role initdb creates; it is a superuser.
SUPERUSER = "postgres"

# With no TCP listener the port only names the socket file (.s.PGSQL.5432), so the default is as
# good as any and never collides with another server: each cluster has its own socket directory.
PORT = 5432

# Linux's sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107

# Accounts to run the server as when we are root, best first: the one made for the job, then
# pgserver's own, then the account that owns nothing.
_SERVICE_ACCOUNTS = ("postgres", "pgserver", "nobody")

_PROGRAMS = ("initdb", "pg_ctl", "postgres")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped."""


def find_bin_dirs() -> list[Path]:
    """Directories holding a complete PostgreSQL (initdb, pg_ctl, postgres), best first.

    pgserver's bundled build comes first; then the system's, found through ``pg_config``, ``PATH``
    and Debian's versioned directories (newest first).
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec("pgserver")
    # Located without importing pgserver, whose import sets up locks and atexit handlers we do
    # not use; pginstall/bin is where its wheel puts the programs.
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(
            Path(location) / "pginstall" / "bin" for location in spec.submodule_search_locations
        )
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        # Resolved, so that initdb and postgres come from the same installation as pg_ctl even
        # when only pg_ctl is linked onto PATH.
        candidates.append(Path(pg_ctl).resolve().parent)
    candidates.extend(
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    found: list[Path] = []
    for candidate in candidates:
        if candidate not in found and all((candidate / name).is_file() for name in _PROGRAMS):
            found.append(candidate)
    return found


def server_major_version(bin_dir: Path) -> str:
    """The major version of the PostgreSQL in *bin_dir*, as written in a cluster's PG_VERSION."""
    # --version is answered before postgres's refusal to run as root, so this works as root too.
    result = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise EmbeddedPostgresError(
            f"cannot tell the version of {bin_dir / 'postgres'!s}: "
            f"{result.stdout + result.stderr!r}"
        )
    return match.group(1)


def _process_alive(pid: int) -> bool:
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


def _postmaster_alive(pid: int) -> bool:
    """Whether *pid*, read from a lock file, is still a PostgreSQL server process."""
    if not _process_alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    # After a reboot the number may belong to anything; postgres, seeing it alive, would refuse
    # to start until someone deleted the lock file by hand.
    return b"postgres" in command


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            children.append(int(entry.parent.name))
    return children


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if _process_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [pid for pid in alive if _process_alive(pid)]
    return alive


class EmbeddedPostgres:
    """A PostgreSQL cluster in *data_dir*, served on a unix socket in that directory.

    :param data_dir: the cluster's directory (PGDATA); created, with its parents, on first start.
    :param bin_dir: where initdb, pg_ctl and postgres are; by default the first of
        :func:`find_bin_dirs` whose major version matches the cluster's, if there is one.
    :param durable: False turns off fsync and friends: much faster, and fine for a test cluster
        that nobody minds losing in an operating-system crash. Never for real data.
    :param run_as: the account that runs the server when we are root; by default the data
        directory's owner if it is not root, else the first of postgres, pgserver and nobody.
    :param timeout: seconds to wait for the server to start or stop.

    When we are root, the directories above *data_dir* are made traversable for the server's
    account (search permission only) and must stay so while it runs, since postgres opens its
    files by absolute path. pytest's temporary directories are a trap here: every new pytest
    session takes that permission back off ``/tmp/pytest-of-<user>``.

    The server outlives this object unless :meth:`stop` is called (``with`` does): a master that
    exits uncleanly leaves it running, and the next :meth:`start` on the directory adopts it.
    Only one process should manage a given directory at a time.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        bin_dir: Path | None = None,
        durable: bool = True,
        run_as: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.durable = durable
        self.timeout = timeout
        self._bin_dir = bin_dir
        self._run_as = run_as
        self._account: pwd.struct_passwd | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({self.data_dir!s})"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_file(self) -> Path:
        """The server's own log (startup, shutdown, errors)."""
        return self.data_dir / "server.log"

    @property
    def socket_dir(self) -> Path:
        """Where the server's socket is: the data directory, unless its path is too long."""
        if len(os.fsencode(self.data_dir / f".s.PGSQL.{PORT}")) <= _MAX_SOCKET_PATH:
            return self.data_dir
        # A deep data directory cannot hold a socket; this name depends only on that directory,
        # so every start (and every client) finds the same place.
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"piwheels-pg-{digest}"

    @property
    def bin_dir(self) -> Path:
        """The PostgreSQL programs this cluster is run with."""
        if self._bin_dir is None:
            self._bin_dir = self._choose_bin_dir()
        return self._bin_dir

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for the superuser on database *dbname*."""
        return make_conninfo(
            "", host=str(self.socket_dir), port=str(PORT), user=SUPERUSER, dbname=dbname
        )

    def pid(self) -> int | None:
        """The postmaster's process id, or None if no server is running on the directory."""
        try:
            first_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first_line)
        except (FileNotFoundError, ValueError):
            return None
        # A stale file outlives a crash or a reboot; _remove_stale_locks deals with it.
        return pid if _postmaster_alive(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> str:
        """Start the server (creating the cluster first if need be) and return :meth:`dsn`.

        Does nothing but return the DSN if a server is already running on the directory.
        """
        with self._lock:
            if self.pid() is not None:
                logger.debug("PostgreSQL already running in %s", self.data_dir)
                return self.dsn()
            self._prepare_directories()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            self._remove_stale_locks()
            self._pg_ctl_start()
            logger.info("PostgreSQL running in %s (pid %s)", self.data_dir, self.pid())
            return self.dsn()

    def stop(self) -> None:
        """Stop the server and wait until none of its processes is left. Safe to repeat."""
        with self._lock:
            pid = self.pid()
            if pid is None:
                logger.debug("PostgreSQL is not running in %s", self.data_dir)
                return
            # Its children, listed now because once the postmaster is gone nothing links them to
            # this cluster, and a backend outliving it keeps the shared memory that blocks the
            # next start.
            processes = [pid, *_children(pid)]
            logger.info("stopping PostgreSQL in %s (pid %d)", self.data_dir, pid)
            # fast: roll back open transactions and disconnect clients rather than wait for them.
            # A master mid-transaction must not hold up a restart.
            if not self._pg_ctl("stop", "-m", "fast", check=False):
                logger.warning("fast shutdown failed in %s; trying immediate", self.data_dir)
                self._pg_ctl("stop", "-m", "immediate", check=False)
            survivors = _wait_gone(processes, self.timeout)
            for survivor in survivors:
                logger.warning("killing PostgreSQL process %d that outlived shutdown", survivor)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(survivor, signal.SIGKILL)
            if _wait_gone(survivors, 5.0):
                raise EmbeddedPostgresError(
                    f"PostgreSQL processes {survivors} in {self.data_dir} survived SIGKILL"
                )

    def restart(self) -> str:
        """Stop the server, start it again on the same directory, and return :meth:`dsn`.

        Every open connection is cut; clients must reconnect.
        """
        with self._lock:
            self.stop()
            return self.start()

    def create_database(self, name: str) -> str:
        """Create an empty database *name* and return its superuser DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database *name* if it exists, disconnecting whoever is still connected to it."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            # WITH (FORCE) terminates sessions too, but only those it can see when it starts;
            # terminating first gives connections that are mid-handshake time to show up.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # Internals ----------------------------------------------------------------------------

    def _choose_bin_dir(self) -> Path:
        candidates = find_bin_dirs()
        if not candidates:
            raise EmbeddedPostgresError(
                "no PostgreSQL found: install the pgserver package (pip install pgserver) "
                "or the system's PostgreSQL server (initdb, pg_ctl and postgres)"
            )
        try:
            wanted = (self.data_dir / "PG_VERSION").read_text().strip()
        except FileNotFoundError:
            return candidates[0]
        # A cluster only runs under the major version that created it.
        for candidate in candidates:
            if server_major_version(candidate) == wanted:
                return candidate
        raise EmbeddedPostgresError(
            f"the cluster in {self.data_dir} was made by PostgreSQL {wanted}, and none of "
            f"{[str(path) for path in candidates]} is that version"
        )

    def _account_for_server(self) -> pwd.struct_passwd | None:
        """The account to switch to for PostgreSQL's programs, or None to stay as we are."""
        if os.geteuid() != 0:
            return None
        if self._account is not None:
            return self._account
        owner = self.data_dir.stat().st_uid if self.data_dir.exists() else 0
        names = [self._run_as] if self._run_as else _SERVICE_ACCOUNTS
        if owner != 0 and self._run_as is None:
            account = pwd.getpwuid(owner)
        else:
            for name in names:
                try:
                    account = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue
            else:
                raise EmbeddedPostgresError(
                    f"PostgreSQL refuses to run as root and none of the accounts {names} "
                    "exists; create one (e.g. useradd --system postgres) or run as another user"
                )
        if account.pw_uid == 0:
            raise EmbeddedPostgresError(
                f"PostgreSQL refuses to run as root, and {self.data_dir} belongs to root: "
                "chown it (recursively) to an unprivileged account"
            )
        self._account = account
        return account

    def _prepare_directories(self) -> None:
        account = self._account_for_server()
        # initdb accepts an existing empty directory, and our programs run inside it (see _run).
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if account is None:
            socket_owner = None
        else:
            if not (self.data_dir / "PG_VERSION").exists():
                os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            self._grant_search(self.data_dir, account)
            self._grant_search(self.bin_dir, account)
            socket_owner = account
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            if socket_owner is not None:
                os.chown(socket_dir, socket_owner.pw_uid, socket_owner.pw_gid)
            logger.info("data directory path too long for a socket; using %s", socket_dir)

    def _grant_search(self, path: Path, account: pwd.struct_passwd) -> None:
        """Let *account* reach *path* by adding search (x, not read) permission where missing.

        Only reached when we are root and the server runs as another account: the directories
        above a root-made data directory (pytest's, for one, is 0700) would otherwise stop the
        server at the door.
        """
        groups = {account.pw_gid} | set(os.getgrouplist(account.pw_name, account.pw_gid))
        for directory in path.parents:
            info = directory.stat()
            if info.st_uid == account.pw_uid:
                bit = stat.S_IXUSR
            elif info.st_gid in groups:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not info.st_mode & bit:
                logger.info("allowing %s to traverse %s", account.pw_name, directory)
                directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)

    def _remove_stale_locks(self) -> None:
        """Remove lock files left by a server that died without cleaning up (killed, say).

        postgres discards such files itself when the process they name is gone, but not when that
        number now belongs to another process (after a reboot), or to a zombie: a killed
        postmaster stays one until whichever process inherited it gets round to reaping it.
        """
        for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{PORT}.lock"):
            try:
                pid = int(lock.read_text().split("\n", 1)[0])
            except (FileNotFoundError, ValueError):
                continue
            if not _postmaster_alive(pid):
                logger.info("removing %s, left by PostgreSQL process %d, now gone", lock, pid)
                lock.unlink(missing_ok=True)

    def _run(self, command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        account = self._account_for_server()
        env = dict(os.environ)
        # Messages we parse or quote in errors stay in English, and the C locale is one that
        # exists everywhere.
        env.update(LC_ALL="C", LANG="C")
        if account is not None:
            env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        logger.debug("running %s", shlex.join(command))
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            # The server's own output goes to its log file (pg_ctl -l), so these pipes close when
            # pg_ctl exits rather than when the server does.
            capture_output=True,
            text=True,
            env=env,
            # Inside the data directory, which the commands call ".": the child enters it before
            # giving up root, so pg_ctl can still reach postmaster.pid, and stop the server, if
            # the directories above stop being traversable for the server's account.
            cwd=self.data_dir,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
            timeout=self.timeout + 30,
            check=False,
        )
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{shlex.join(command)} in {self.data_dir} failed with exit status "
                f"{result.returncode}:\n"
                f"{result.stdout}{result.stderr}{self._log_tail()}"
            )
        return result

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\nserver log ({}):\n{}".format(self.log_file, "\n".join(text.splitlines()[-lines:]))

    def _initdb(self) -> None:
        logger.info("creating a PostgreSQL cluster in %s with %s", self.data_dir, self.bin_dir)
        command = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            ".",
            "--username",
            SUPERUSER,
            # trust is safe here because nothing but the socket listens, and the socket lives in
            # a 0700 directory that only the server's account (and root) can enter.
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            # C: byte order, and no dependency on which locales the host happens to have.
            "--locale",
            "C",
            "--no-instructions",
        ]
        if not self.durable:
            command.append("--no-sync")
        self._run(command)

    def _pg_ctl(self, *args: str, check: bool = True) -> bool:
        command = [
            str(self.bin_dir / "pg_ctl"),
            "--pgdata",
            ".",
            "--wait",
            "--timeout",
            str(int(self.timeout)),
            *args,
        ]
        return self._run(command, check=check).returncode == 0

    def _pg_ctl_start(self) -> None:
        options = [
            # No TCP at all; clients come through the socket.
            "-h",
            "",
            "-k",
            str(self.socket_dir),
            "-p",
            str(PORT),
        ]
        if not self.durable:
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                options += ["-c", setting]
        # pg_ctl hands -o to a shell, hence the quoting.
        self._pg_ctl("--log", self.log_file.name, "--options", shlex.join(options), "start")
