"""``piw-slave``: build wheels for one Python interpreter on behalf of a piwheels master."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType

from piwheels import defaults
from piwheels.builder_keys import (
    SLAVE_KEY,
    ClientKeys,
    KeyFileError,
    fingerprint,
    key_pair,
    public_key,
)
from piwheels.cli.options import ConfigError, configure_logging, make_parser, parse_args
from piwheels.slave.agent import PiwSlave, SlaveConfig
from piwheels.slave.build_volume import own_mount_namespace
from piwheels.slave.interpreter import InterpreterError, inspect_interpreter
from piwheels.slave.limits import Limits
from piwheels.slave.sandbox import make_sandbox
from piwheels.slave.work_root import WorkRoot, WorkRootBusy

__all__ = ["main", "parse_duration", "parse_size"]

log = logging.getLogger("piwheels.slave")

DESCRIPTION = """\
Build wheels for the piwheels master at --master, with the interpreter given by --python (one
machine may run one slave per interpreter, i.e. per ABI). Run it as an unprivileged user with
the build dependencies you want available already installed: every build runs code from PyPI.
It runs until the master tells it to stop, or until SIGTERM or Ctrl+C (after which it kills any
build and says goodbye to the master). Durations are seconds, or numbers with units: 90, 90s,
5m, 3h, 1h30m, 1d.
"""

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int | None:
    """A size in bytes (``"3G"``, ``"500M"``, ``"1024"``), or None for ``"none"``: no limit.

    >>> parse_size("1.5G")
    1610612736
    """
    text = text.strip().lower()
    if text in ("none", "unlimited"):
        return None
    match = _SIZE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 3G, 500M, none)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _cpus(text: str) -> int | None:
    if text.strip().lower() in ("all", "none"):
        return None
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of CPUs")
    return count


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """A positive duration: plain seconds (``"300"``) or units (``"5m"``, ``"1h30m"``).

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration (e.g. 300, 5m, 3h)"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not 0 < seconds < 10 * 365 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return timedelta(seconds=seconds)


def _label(text: str) -> str:
    # HELLO's strings are bounded; an over-long label would only fail later, on the wire.
    if not 0 < len(text) <= 255:
        raise argparse.ArgumentTypeError(f"a label has 1 to 255 characters, not {len(text)}")
    return text


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port")
    return port


def make_slave_parser() -> argparse.ArgumentParser:
    parser = make_parser("piw-slave", DESCRIPTION)
    parser.add_argument(
        "-m",
        "--master",
        metavar="HOST",
        default="localhost",
        help="the host name or IP address of the piwheels master",
    )
    parser.add_argument(
        "--slave-port",
        metavar="PORT",
        type=_port,
        default=defaults.SLAVE_PORT,
        help="the master's slave driver port (ignored with --slave-queue)",
    )
    parser.add_argument(
        "--file-port",
        metavar="PORT",
        type=_port,
        default=defaults.FILE_PORT,
        help="the master's file juggler port (ignored with --file-queue)",
    )
    parser.add_argument(
        "--slave-queue",
        metavar="ADDRESS",
        help="the full ZeroMQ address of the slave driver, e.g. tcp://master:5555; "
        "overrides --master and --slave-port",
    )
    parser.add_argument(
        "--file-queue",
        metavar="ADDRESS",
        help="the full ZeroMQ address of the file juggler, e.g. tcp://master:5556; "
        "overrides --master and --file-port",
    )
    keys = parser.add_argument_group(
        "keys (the master admits only builders whose keys its operator trusts)"
    )
    keys.add_argument(
        "--master-key",
        metavar="KEY",
        help="the master's public key, or a file holding it (its master.key); piw-master logs "
        "it when it starts, and piw-trust master prints it. The slave talks to no one else",
    )
    keys.add_argument(
        "--key-dir",
        metavar="DIR",
        type=Path,
        default=default_key_dir(),
        help="where this slave's key pair is kept, made at its first start (the master's "
        "operator trusts its public key: piw-trust add)",
    )
    keys.add_argument(
        "--insecure",
        action="store_true",
        help="talk to a master's insecure queues, with no keys: anyone on the way can read, "
        "change or pose as either end",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        type=Path,
        default=Path(sys.executable),
        help="the Python interpreter (with pip) to build wheels for; its version, ABI and "
        "platform tags decide which builds the master sends",
    )
    parser.add_argument(
        "-t",
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        default="3h",
        help="the time after which a build is assumed to have failed, and is killed",
    )
    parser.add_argument(
        "--master-timeout",
        metavar="DURATION",
        type=parse_duration,
        default="5m",
        help="the longest the slave waits for the master to answer before dropping any build "
        "and introducing itself again",
    )
    parser.add_argument(
        "-L",
        "--label",
        type=_label,
        default=socket.gethostname().split(".")[0],
        help="a name for this slave, shown to administrators; the default is the short hostname",
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        type=Path,
        help="the directory builds happen in; without it, a temporary directory removed on "
        "exit. Its file system's free space is reported to the master",
    )
    parser.add_argument(
        "--busy-interval",
        metavar="DURATION",
        type=parse_duration,
        default="10s",
        help="how often the slave tells the master it is still building",
    )
    parser.add_argument(
        "--sleep-interval",
        metavar="DURATION",
        type=parse_duration,
        default="10s",
        help="how long the slave waits before asking again when the master has nothing to build",
    )
    limits = parser.add_argument_group(
        "limits of each build (a build past one fails: out-of-memory, disk-full, timeout)"
    )
    limits.add_argument(
        "--memory-limit",
        metavar="SIZE",
        type=parse_size,
        default="3G",
        help="memory, by a cgroup of the build's own where the slave can make one, otherwise an "
        "address-space rlimit (the log says which); 'none' for no limit",
    )
    limits.add_argument(
        "--disk-limit",
        metavar="SIZE",
        type=parse_size,
        default="10G",
        help="the size of each build's directory (its TMPDIR and HOME included): a filesystem of "
        "its own where the slave can mount one (as root), otherwise measured every few seconds "
        "(the log says which); 'none' for no limit",
    )
    limits.add_argument(
        "--cpus",
        metavar="N",
        type=_cpus,
        default=None,
        help="CPUs a build may use, and the jobs make, cmake and cargo run (default: all)",
    )
    parser.add_argument(
        "--toolchain",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="a directory builds may read (a compiler installed under a home directory, say), "
        "bound read-only into the sandbox; repeatable. Toolchains on the slave's PATH that the "
        "sandbox would hide (rustup's ~/.cargo/bin, pyenv's shims) are bound without it",
    )
    parser.add_argument(
        "--allow-root",
        action="store_true",
        help="run even as root (in a throwaway container, say); otherwise the slave refuses, "
        "since builds run arbitrary code from PyPI with the slave's privileges",
    )
    return parser


def default_key_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "piwheels-slave" / "keys"


def slave_keys(args: argparse.Namespace) -> ClientKeys | None:
    """The keys the slave connects with (None with --insecure), its own made on first use."""
    if args.insecure:
        if args.master_key:
            raise KeyFileError("--insecure and --master-key: choose one")
        log.warning("talking to the master with no keys (--insecure)")
        return None
    if not args.master_key:
        raise KeyFileError(
            "the master's public key is needed (--master-key): piw-master logs it when it "
            "starts, and piw-trust master prints it (or --insecure, for an insecure queue)"
        )
    master = public_key(args.master_key)
    pair, made = key_pair(args.key_dir, SLAVE_KEY)
    trust = shlex.join(["piw-trust", "add", pair.public.decode(), "--label", args.label])
    if made:
        log.warning("made this slave's key pair in %s; on the master: %s", args.key_dir, trust)
    log.info("this slave's key is %s; the master's %s", pair.fingerprint, fingerprint(master))
    return ClientKeys(pair, master)


def _address(host: str, port: int) -> str:
    # A bare IPv6 address needs brackets to be told apart from the port.
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp://{host}:{port}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_slave_parser()
    try:
        args = parse_args(parser, argv, "slave")
    except ConfigError as exc:
        parser.print_usage(sys.stderr)
        print(f"piw-slave: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args)
    if os.geteuid() == 0:
        if not args.allow_root:
            log.error("refusing to run as root: builds would run with root's privileges")
            return 2
        log.warning("RUNNING AS ROOT: every build runs code from PyPI with root's privileges")
    try:
        interpreter = inspect_interpreter(args.python)
    except InterpreterError as exc:
        log.error("%s", exc)
        return 2
    try:
        keys = slave_keys(args)
    except KeyFileError as exc:
        log.error("%s", exc)
        return 2
    temporary = args.dir is None
    try:
        root = WorkRoot.temporary() if temporary else WorkRoot(args.dir)
    except (WorkRootBusy, OSError) as exc:
        log.error("%s", exc)
        return 2
    root.remove_leftover_builds()
    if args.disk_limit is not None and os.geteuid() == 0:
        trouble = own_mount_namespace()
        if trouble is not None:
            log.warning("builds' filesystems would outlive a killed slave: %s", trouble)
    work_root = root.path
    config = SlaveConfig(
        slave_queue=args.slave_queue or _address(args.master, args.slave_port),
        file_queue=args.file_queue or _address(args.master, args.file_port),
        label=args.label,
        work_root=work_root,
        build_timeout=args.timeout,
        master_timeout=args.master_timeout,
        busy_interval=args.busy_interval,
        sleep_interval=args.sleep_interval,
        toolchains=tuple(args.toolchain),
        limits=Limits(args.memory_limit, args.disk_limit, args.cpus),
        keys=keys,
    )
    log.info(
        "slave %r building for %s %s (%s, Python %s) in %s, master %s",
        config.label,
        interpreter.abi_tag,
        interpreter.platform_tag,
        interpreter.path,
        interpreter.version,
        work_root,
        config.slave_queue,
    )
    try:
        # a build must never read the slave's secret key: it could pose as this builder
        sandbox = make_sandbox(hide=[args.key_dir] if keys is not None else [])
        if keys is not None and not sandbox.isolated:
            log.warning(
                "builds are not sandboxed (no bubblewrap): a build can read this slave's "
                "secret key in %s",
                args.key_dir,
            )
        slave = PiwSlave(config, interpreter, sandbox=sandbox)
        with _stop_on_signals(slave):
            return slave.run()
    finally:
        root.release(remove=temporary)


@contextlib.contextmanager
def _stop_on_signals(slave: PiwSlave) -> Iterator[None]:
    """Turn SIGTERM and SIGINT into :meth:`PiwSlave.stop` while the slave runs."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.warning("received %s", signal.Signals(signum).name)
        slave.stop()
        # A second Ctrl+C means "now": no more cleaning up.
        signal.signal(signum, signal.SIG_DFL)

    previous = {}
    # Only the main thread may set handlers; a test calling main() in a thread stops it itself.
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
