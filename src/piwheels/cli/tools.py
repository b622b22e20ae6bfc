"""What the operators' tools (piw-import, piw-remove, piw-rebuild, piw-add) share.

Each tool sends Mr. Chase one request (an import is a short conversation) on the master's
``--import-queue`` and reports the answer. Every failure becomes a :class:`ToolError`, which
:func:`run_tool` turns into one message on stderr and the exit status its kind stands for:

* 0: done;
* 1: the master refused or failed the request (its ERROR message is printed);
* 2: bad command line or input: nothing was sent, or a destructive action was not confirmed;
* 3: the master could not be reached, or stopped answering.
"""

from __future__ import annotations

import argparse
import enum
import logging
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, TextIO

import zmq
from packaging.utils import InvalidName, canonicalize_name

from piwheels import protocols
from piwheels.abis import UnknownABI, parse_abi
from piwheels.cli.options import (
    ConfigError,
    configure_logging,
    make_parser,
    parse_args,
    per_run,
)
from piwheels.master_support.config import MasterConfig
from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA
from piwheels.transport import Socket, private_routing_id

__all__ = [
    "BadInput",
    "ExitStatus",
    "MasterClient",
    "MasterError",
    "MasterUnreachable",
    "Progress",
    "ToolError",
    "abi_tag",
    "add_master_options",
    "add_yes_option",
    "check_ipc_path",
    "confirm",
    "make_tool_parser",
    "project_name",
    "run_tool",
]

log = logging.getLogger("piwheels.cli.tools")

# The address piw-master binds by default, so that the tools find it with no options.
DEFAULT_IMPORT_QUEUE = MasterConfig.import_queue
DEFAULT_TIMEOUT = 30.0


class ExitStatus(enum.IntEnum):
    OK = 0
    MASTER_ERROR = 1
    BAD_INPUT = 2
    UNREACHABLE = 3
    INTERRUPTED = 130  # the shell's convention for Ctrl+C


class ToolError(Exception):
    """Something the tool cannot go on from; the message is written for the operator."""

    status = ExitStatus.MASTER_ERROR


class MasterError(ToolError):
    """The master answered ERROR (the message is its own), or an answer the tool cannot use."""

    status = ExitStatus.MASTER_ERROR


class BadInput(ToolError):
    """A bad argument, file or answer to a prompt; the message quotes it. Nothing was sent."""

    status = ExitStatus.BAD_INPUT


class MasterUnreachable(ToolError):
    """No master at the address, or it did not answer within the timeout."""

    status = ExitStatus.UNREACHABLE


# -- options ----------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        # "(default: None)" and "(default: False)" say nothing; where it matters, the help text
        # says what happens without the option.
        if action.default is None or action.default is False or action.default == 0:
            return action.help or ""
        return super()._get_help_string(action) or ""


def make_tool_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The shared options (:func:`~piwheels.cli.options.make_parser`), with help for tools."""
    parser = make_parser(prog, description)
    parser.formatter_class = _HelpFormatter
    parser.epilog = (
        "Exit status: 0 done; 1 the master refused or failed (its message is printed); 2 bad "
        "arguments or input, or not confirmed (nothing was done); 3 the master is not running or "
        "did not answer. The options about logging and the master can also be set in a config "
        f"file (--config, under [{prog.removeprefix('piw-')}], dashes as underscores) or as "
        "environment variables PIW_<NAME> (e.g. PIW_IMPORT_QUEUE); the others only on the "
        "command line."
    )
    return parser


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400 * 365:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def abi_tag(text: str) -> str:
    """An ``--abi`` value: a CPython ABI tag such as cp311."""
    try:
        return parse_abi(text).abi_tag
    except UnknownABI as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def project_name(text: str) -> str:
    """A project name as the master keys it (PEP 503 normalized), refusing invalid names."""
    try:
        return canonicalize_name(text, validate=True)
    except InvalidName:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid project name") from None


def add_master_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the master")
    group.add_argument(
        "--import-queue",
        default=DEFAULT_IMPORT_QUEUE,
        metavar="ADDR",
        help="the master's --import-queue, where Mr. Chase answers (a ZeroMQ address)",
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long to wait for each answer from the master before giving up (exit 3)",
    )


def add_yes_option(parser: argparse.ArgumentParser) -> None:
    per_run(
        parser.add_argument(
            "-y",
            "--yes",
            action="store_true",
            help="do not ask for confirmation (needed when not run from a terminal)",
        )
    )


# -- running a tool ---------------------------------------------------------------------------


def run_tool(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    body: Callable[[argparse.Namespace], None],
) -> int:
    """Parse *argv*, run *body*, and turn whatever went wrong into a message and exit status.

    This is the one place the tools' exceptions become exit statuses: *body* raises a
    :class:`ToolError` subclass for whatever it cannot do, and returns on success.
    """
    section = parser.prog.removeprefix("piw-")
    try:
        args = parse_args(parser, argv, section)
    except ConfigError as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return ExitStatus.BAD_INPUT
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else ExitStatus.BAD_INPUT
    # One level quieter than the daemons: the tools report to the operator with print(); their
    # log is detail, shown with -v.
    configure_logging(argparse.Namespace(**{**vars(args), "quiet": args.quiet + 1}))
    try:
        body(args)
    except ToolError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK


def confirm(question: str, *, assume_yes: bool, stdin: TextIO | None = None) -> None:
    """Ask the operator to confirm a destructive *question*; raise :class:`BadInput` if not.

    Without a terminal there is nobody to ask, and a script that forgot ``--yes`` must not
    destroy anything: it is refused, not assumed.
    """
    if assume_yes:
        return
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        raise BadInput(f"refusing to {question} without --yes (standard input is not a terminal)")
    print(f"{question[0].upper()}{question[1:]}? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise BadInput("not confirmed; nothing was done")


# -- talking to Mr. Chase ---------------------------------------------------------------------


class MasterClient:
    """A REQ socket to Mr. Chase that never waits longer than *timeout* for an answer."""

    def __init__(
        self, address: str, timeout: float, *, context: zmq.Context[Any] | None = None
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.context: zmq.Context[Any] = context or zmq.Context.instance()
        check_ipc_path(address)
        self.sock = Socket(zmq.REQ, reversed(protocols.mr_chase), context=self.context)
        # The master may be named by an IPv6 address or a name that resolves to one.
        self.sock.zsock.setsockopt(zmq.IPV6, 1)
        # piw-import's file connections bear the same id: only they may send its files.
        self.routing_id = private_routing_id()
        self.sock.zsock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        try:
            self.sock.connect(address)
        except zmq.ZMQError as exc:
            self.sock.close()
            raise BadInput(f"cannot use --import-queue {address!r}: {exc}") from None

    def request(self, action: str, data: Any = NO_DATA) -> tuple[str, Any]:
        """Send *action* and return the answer; ERROR and silence become exceptions."""
        deadline = time.monotonic() + self.timeout
        silence = MasterUnreachable(
            f"no answer from the master at {self.address} within {self.timeout:g}s "
            f"(is piw-master running with --import-queue {self.address}?)"
        )

        def waiting() -> None:
            if time.monotonic() >= deadline:
                raise silence

        try:
            self.sock.send_unstuck(action, data, waiting=waiting)
        except ProtocolError as exc:
            # Raised before anything left: the request does not fit the protocol.
            raise BadInput(f"cannot send {action}: {exc}") from None
        if not self.sock.poll(max(0.0, deadline - time.monotonic()) * 1000):
            raise silence
        try:
            reply, reply_data = self.sock.recv()
        except ProtocolError as exc:
            raise MasterError(f"the master's answer to {action} makes no sense: {exc}") from None
        if reply == "ERROR":
            raise MasterError(str(reply_data))
        log.debug("%s answered with %s", action, reply)
        return reply, reply_data

    def expect_done(self, action: str, data: Any = NO_DATA) -> None:
        """A request whose only good answer is DONE (REMOVE, REBUILD and the repairs)."""
        reply, _ = self.request(action, data)
        if reply != "DONE":
            raise MasterError(f"the master answered {action} with {reply}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_ipc_path(address: str, option: str = "--import-queue") -> None:
    # A REQ socket connects lazily and would wait the whole timeout for a master that is not
    # there. For an ipc address we can tell at once, and say more clearly why: no socket file,
    # or one that nothing listens on any more (a master that died leaves it behind).
    if not address.startswith("ipc://") or address.startswith("ipc://@"):  # @: abstract socket
        return
    path = Path(address.removeprefix("ipc://"))
    if not path.exists():
        raise MasterUnreachable(
            f"no master at {address}: {path} does not exist "
            f"(is piw-master running, with this {option}?)"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            raise MasterUnreachable(
                f"no master at {address}: nothing is listening on {path} "
                f"(is piw-master running, with this {option}?)"
            ) from None
        except PermissionError:
            raise MasterUnreachable(
                f"cannot reach the master at {address}: no permission to connect to {path}"
            ) from None
        except OSError as exc:
            # Too long a path for a plain socket, say: ZeroMQ may still manage; let it try.
            log.debug("cannot probe %s: %s", path, exc)


# -- progress ---------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on stderr for *total* bytes, redrawn at most ten times a second.

    Drawn only on a terminal (a log file gets nothing but the final report), and never when
    *enabled* is false (``--quiet``).
    """

    WIDTH = 30

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.done = 0
        self.label = ""
        self.enabled = enabled and self.stream.isatty()
        self._drawn_at = 0.0

    def start(self, label: str) -> None:
        self.label = label
        self._draw(force=True)

    def advance(self, amount: int) -> None:
        # A chunk the master asked for twice is counted twice; the bar must not pass 100%.
        self.done = min(self.total, self.done + amount)
        self._draw()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")  # clear the bar's line for what is printed next
            self.stream.flush()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn_at < 0.1):
            return
        self._drawn_at = now
        filled = self.WIDTH * self.done // self.total
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        percent = 100 * self.done // self.total
        self.stream.write(f"\r\x1b[K[{bar}] {percent:3d}% {self.label}")
        self.stream.flush()
