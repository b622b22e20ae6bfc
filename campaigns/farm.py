"""The farm a campaign runs against: on loopback, in one temporary directory.

A PostgreSQL (the tests' EmbeddedPostgres, or the master's own with ``--data-dir``), the tests'
LocalPyPI, ``piw-master`` and real ``piw-slave`` processes. Each child gets SIGTERM should the
campaign die (PR_SET_PDEATHSIG); the farm stops only the pids it started, and what they started.

Every key is in the farm's directory, never in the user's own: the master's pair (``--key-dir
WORK/keys``, made before its first start, as piw-master makes it) and its trusted builders'
keys, each real slave's pair (``--key-dir``, trusted before the slave starts, as an operator
would with piw-trust) and the keys of the campaign's own builders. The master also opens its
insecure queues (``--insecure-slave-queue``, ``--insecure-file-queue``), for peers without keys.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import faulthandler
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from piwheels.builder_keys import (
    MASTER_KEY,
    PUBLIC_SUFFIX,
    SLAVE_KEY,
    TRUSTED,
    ClientKeys,
    KeyPair,
    TrustedKeys,
    key_pair,
)
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# The campaigns build against the tests' own LocalPyPI and sdist factory, not a copy of them.
sys.path.insert(0, str(ROOT / "tests"))
from pypi_index import (  # noqa: E402
    BUILD_DEPS_DIR,
    DEFAULT_CATALOGUE,
    PACKAGES_DIR,
    LocalPyPI,
    SdistFactory,
    find_python,
    make_wheel,
)

__all__ = ["BUILD_DEPS_DIR", "DEFAULT_CATALOGUE", "Farm", "find_python", "make_wheel"]

QUEUES = ("slave", "file", "import", "control", "status")  # piw-master's --QUEUE-queue options
# The plain builder queues (--insecure-slave-queue, --insecure-file-queue): their addresses are
# farm.addresses["insecure-slave"] and ["insecure-file"].
INSECURE_QUEUES = ("insecure-slave", "insecure-file")
PR_SET_PDEATHSIG = 1
# "slave 7 (label, peer, key ...) connected: ..." in the master's log; what the slave says in its
# own.
MASTER_SAYS_CONNECTED = re.compile(rb"slave (\d+) \(([^,)\n]*)[,)][^\n]* connected")
SLAVE_SAYS_CONNECTED = re.compile(rb"connected to the master as slave (\d+)")


def arguments(description: str) -> argparse.ArgumentParser:
    """A campaign's command line, with the options every campaign has."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


def run_in_farm(prefix: str, keep: bool, campaign: Callable[[Farm], int]) -> int:
    """*campaign* on a farm in a new temporary directory, which is removed afterwards (unless
    *keep*), with everything the farm started stopped; 2 if the campaign broke."""
    faulthandler.enable()  # a crash of the campaign itself says where
    work = Path(tempfile.mkdtemp(prefix=prefix))
    farm = Farm(work)
    try:
        return campaign(farm)
    except Exception:  # a broken campaign is reported, and cleaned up after
        traceback.print_exc()
        return 2
    finally:
        stopped = farm.stop()
        if stopped["leftovers_killed"]:
            print(f"killed leftover processes: {stopped['leftovers_killed']}")
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_us() -> None:
    """In a child, before exec: be sent SIGTERM if the campaign dies without cleaning up."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def clean_env() -> dict[str, str]:
    """Our environment without PIW_ settings, which would reconfigure the master or slave."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}


def descendants(pid: int) -> dict[int, bytes]:
    """The processes below *pid*, with their command lines (to tell a reused pid apart)."""
    found: dict[int, bytes] = {}
    stack = [pid]
    while stack:
        parent = stack.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                for child in map(int, children.read_text().split()):
                    with contextlib.suppress(OSError):
                        found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
                        stack.append(child)
    return found


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM *proc* (ours), then SIGKILL it if it lingers; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def readable(command: bytes) -> str:
    """A command line from /proc, shortened, for a report."""
    return command.replace(b"\0", b" ").decode(errors="replace").strip()[:150]


def end_leftovers(known: dict[int, bytes], grace: float = 3.0) -> list[str]:
    """Kill, by pid, processes our master or slaves started that outlived them by *grace*
    seconds (a helper may take a moment to see its parent gone); which they were."""
    deadline = time.monotonic() + grace
    while True:
        # a pid whose command line changed is gone, the number taken by another process
        left = {pid: command for pid, command in known.items() if cmdline(pid) == command}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ended = []
    for pid, command in left.items():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            ended.append(f"{pid} {readable(command)}")
    return ended


def options(flag: str, values: Iterable[str]) -> list[str]:
    """``--flag a --flag b``: one repeatable option, once for each value."""
    return [arg for value in values for arg in (flag, value)]


@dataclass(eq=False)
class Slave:
    """A real piw-slave of ours. Started again after a kill, it is on the same ``--dir``."""

    label: str
    python: Path
    root: Path
    log: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Farm:
    """PostgreSQL, the index, the master and the slaves, all in *work*."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.output = work / "www"
        self.master_log = work / "master.log"  # appended to by every master started
        self.env = clean_env()
        self.pg: EmbeddedPostgres | None = None
        self.index: LocalPyPI | None = None
        self.dsn = ""  # the superuser's: a campaign reads what it likes
        self.master: subprocess.Popen[bytes] | None = None
        self.master_args: list[str] = []
        self.slaves: dict[str, Slave] = {}
        self.addresses = {
            "slave": f"tcp://127.0.0.1:{free_port()}",
            "file": f"tcp://127.0.0.1:{free_port()}",
            "import": f"ipc://{work}/sockets/import",
            "control": f"ipc://{work}/sockets/control",
            "status": f"ipc://{work}/sockets/status",
            "insecure-slave": f"tcp://127.0.0.1:{free_port()}",
            "insecure-file": f"tcp://127.0.0.1:{free_port()}",
        }
        self.key_dir = work / "keys"  # the master's (--key-dir): never the user's own
        self._master_key: KeyPair | None = None
        self.known_children: dict[int, bytes] = {}
        self.ids: defaultdict[str, set[int]] = defaultdict(set)  # slave ids by label
        self._log_offset = 0

    # keys

    def master_key(self) -> KeyPair:
        """The master's key pair, made as piw-master makes it at its first start (so that its
        builders can be told its public key before it starts)."""
        if self._master_key is None:
            self._master_key, _ = key_pair(self.key_dir, MASTER_KEY)
        return self._master_key

    @property
    def trusted(self) -> TrustedKeys:
        """The master's trusted builders' keys, as piw-trust adds and revokes them."""
        return TrustedKeys(self.key_dir / TRUSTED)

    def builder_keys(
        self, label: str, *, trusted: bool = True, directory: Path | None = None
    ) -> ClientKeys:
        """A builder's key pair (in *directory*, by default one of its own in the farm's
        directory), trusted by the master unless not *trusted*, with the master's public key."""
        directory = directory or self.work / "builder-keys" / label
        pair, _ = key_pair(directory, SLAVE_KEY)
        if trusted:
            self.trusted.add(pair.public, label)
        return ClientKeys(pair, self.master_key().public)

    # starting

    def start_database(self) -> None:
        """A PostgreSQL of the campaign's own, migrated, for a master given ``--dsn``."""
        self.pg = EmbeddedPostgres(self.work / "postgres", durable=False)
        self.pg.start()
        self.dsn = self.pg.create_database("campaign")
        migrate(self.dsn)

    def start_index(
        self, entries: Iterable[tuple[str, str, str | None]], packages: Path = PACKAGES_DIR
    ) -> LocalPyPI:
        """The index on 127.0.0.1, serving (project, version, yank reason) of *packages*."""
        sdists = SdistFactory(self.work / "sdists", packages_dir=packages)
        self.index = LocalPyPI(sdists=sdists, build_deps=BUILD_DEPS_DIR, work_dir=self.work)
        self.index.start()
        self.index.add_catalogue(entries)
        return self.index

    def spawn(self, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                preexec_fn=die_with_us,  # noqa: PLW1509 - a plain syscall, safe before exec
            )

    def start_master(
        self, packages: Iterable[str], abis: Iterable[str], *extra: str
    ) -> subprocess.Popen[bytes]:
        """``piw-master`` on the farm's queues and output; started again with the same
        arguments by :meth:`restart_master`."""
        assert self.index is not None
        self.master_args = [
            str(VENV_BIN / "piw-master"),
            "--output-path",
            str(self.output),
            "--pypi-simple",
            self.index.simple_url,
            "--pypi-json",
            self.index.json_url,
            *options("--package", sorted(set(packages))),
            *options("--build-abi", abis),
            "--min-free-space",
            str(1 << 20),
            *(
                arg
                for queue in (*QUEUES, *INSECURE_QUEUES)
                for arg in (f"--{queue}-queue", self.addresses[queue])
            ),
            "--key-dir",
            str(self.key_dir),
            *extra,
        ]
        self.master_key()  # made before the first start, as piw-master would
        return self.restart_master()

    def restart_master(self) -> subprocess.Popen[bytes]:
        self.master = self.spawn(self.master_args, self.master_log)
        return self.master

    def start_slave(
        self,
        label: str,
        python: Path | None = None,
        *,
        busy_interval: float = 2,
        sleep_interval: float = 1,
        master_timeout: float = 60,
    ) -> Slave:
        """A real slave; a label seen before starts that slave again, on its directory."""
        slave = self.slaves.get(label)
        if slave is None:
            assert python is not None
            root = self.work / "slaves" / label
            root.mkdir(parents=True)
            # its own key pair, trusted by the master before it starts, as an operator would
            key_dir = self.work / "slave-keys" / label
            self.builder_keys(label, directory=key_dir)
            args = [
                str(VENV_BIN / "piw-slave"),
                *(
                    arg
                    for queue in ("slave", "file")
                    for arg in (f"--{queue}-queue", self.addresses[queue])
                ),
                "--python",
                str(python),
                "--dir",
                str(root),
                "--label",
                label,
                "--busy-interval",
                str(busy_interval),
                "--sleep-interval",
                str(sleep_interval),
                "--master-timeout",
                str(master_timeout),
                "--key-dir",
                str(key_dir),
                "--master-key",
                str(self.key_dir / f"{MASTER_KEY}{PUBLIC_SUFFIX}"),
                "-v",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ]
            slave = self.slaves[label] = Slave(
                label, python, root, self.work / f"{label}.log", args
            )
        slave.proc = self.spawn(slave.args, slave.log)
        return slave

    # watching

    def note_children(self) -> None:
        for proc in (self.master, *(s.proc for s in self.slaves.values())):
            if proc is not None and proc.poll() is None:
                self.known_children.update(descendants(proc.pid))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def scan_log(self) -> defaultdict[str, set[int]]:
        """Each slave's ids (one a HELLO: a slave that lost the master gets a new one), from
        the master's log lines since the last scan and from our slaves' own logs."""
        try:
            with self.master_log.open("rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except OSError:
            return self.ids
        data = data[: data.rfind(b"\n") + 1]  # whole lines only
        self._log_offset += len(data)
        for number, label in MASTER_SAYS_CONNECTED.findall(data):
            self.ids[label.decode(errors="replace")].add(int(number))
        for slave in self.slaves.values():
            with contextlib.suppress(OSError):
                found = SLAVE_SAYS_CONNECTED.findall(slave.log.read_bytes())
                self.ids[slave.label].update(int(n) for n in found)
        return self.ids

    # stopping

    def stop_slaves(self) -> dict[str, Any]:
        """SIGTERM every slave; which had died on their own (with their log's tail)."""
        died: dict[str, list[str]] = {}
        for slave in self.slaves.values():
            if slave.proc is None:
                continue
            status = slave.proc.poll()
            if status is not None:
                tail = slave.log.read_text(errors="replace").splitlines()[-4:]
                died[slave.label] = [f"exit status {status}", *tail]
            stop_process(slave.proc, 20)
        return died

    def stop_processes(self) -> dict[str, Any]:
        """Stop the slaves, then the master (and anything they left); how they went."""
        self.note_children()
        figures: dict[str, Any] = {"slaves_died": self.stop_slaves()}
        if self.master is not None:
            was_running = self.master.poll() is None
            status = stop_process(self.master, 40)
            figures["master_exit_on_stop"] = status if was_running else None
        figures["leftovers_killed"] = end_leftovers(self.known_children)
        return figures

    def stop(self) -> dict[str, Any]:
        """Stop everything this farm started (safe to repeat)."""
        figures = self.stop_processes()
        if self.index is not None:
            self.index.stop()
            self.index = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        return figures
