"""One embedded PostgreSQL cluster's life: made, started, stopped, restarted; its databases.

The server listens on a unix socket in (or, for a deep path, named after) its data directory and
nowhere else, so every cluster has its own socket and none is reachable from the network. It
outlives the process that started it unless stopped, so that a master exiting uncleanly leaves it
for the next start to adopt; stopping makes sure that no process of it is left, since a backend
outliving its postmaster keeps the shared memory that blocks the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import shlex
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from piwheels.db.embedded import EmbeddedPostgresError
from piwheels.db.embedded.account import choose_account, grant_search
from piwheels.db.embedded.binaries import choose_bin_dir
from piwheels.db.embedded.processes import child_pids, postmaster_alive, wait_gone

# The package's one logger, so that logging settings name the embedded server at once.
logger = logging.getLogger("piwheels.db.embedded")

#: The role initdb creates; it is a superuser.
SUPERUSER = "postgres"

# With no TCP listener the port only names the socket file (.s.PGSQL.5432), so the default is as
# good as any and never collides with another server: each cluster has its own socket directory.
PORT = 5432

# Linux's sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


class EmbeddedPostgres:
    """A PostgreSQL cluster in *data_dir*, served on a unix socket in that directory.

    :param data_dir: the cluster's directory (PGDATA); created, with its parents, on first start.
    :param bin_dir: where initdb, pg_ctl and postgres are; by default the first of
        :func:`.binaries.find_bin_dirs` whose major version matches the cluster's, if there is one.
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
            self._bin_dir = choose_bin_dir(self.data_dir)
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
        return pid if postmaster_alive(pid) else None

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
            processes = [pid, *child_pids(pid)]
            logger.info("stopping PostgreSQL in %s (pid %d)", self.data_dir, pid)
            # fast: roll back open transactions and disconnect clients rather than wait for them.
            # A master mid-transaction must not hold up a restart.
            if not self._pg_ctl("stop", "-m", "fast", check=False):
                logger.warning("fast shutdown failed in %s; trying immediate", self.data_dir)
                self._pg_ctl("stop", "-m", "immediate", check=False)
            survivors = wait_gone(processes, self.timeout)
            for survivor in survivors:
                logger.warning("killing PostgreSQL process %d that outlived shutdown", survivor)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(survivor, signal.SIGKILL)
            if wait_gone(survivors, 5.0):
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

    def _account_for_server(self) -> pwd.struct_passwd | None:
        """The account to switch to for PostgreSQL's programs, or None to stay as we are."""
        if os.geteuid() != 0:
            return None
        if self._account is None:
            self._account = choose_account(self.data_dir, self._run_as)
        return self._account

    def _prepare_directories(self) -> None:
        account = self._account_for_server()
        # initdb accepts an existing empty directory, and our programs run inside it (see _run).
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if account is None:
            socket_owner = None
        else:
            if not (self.data_dir / "PG_VERSION").exists():
                os.chown(self.data_dir, account.pw_uid, account.pw_gid)
            grant_search(self.data_dir, account)
            grant_search(self.bin_dir, account)
            socket_owner = account
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            if socket_owner is not None:
                os.chown(socket_dir, socket_owner.pw_uid, socket_owner.pw_gid)
            logger.info("data directory path too long for a socket; using %s", socket_dir)

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
            if not postmaster_alive(pid):
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
