"""``piw-add``: the operators' repairs to what the master knows about a project or version.

One action per run, so each run is one request to Mr. Chase that happens entirely or not at
all: ADD (the default, or ``--new``), SKIP (``--skip`` / ``--unskip``), YANK (``--yank`` /
``--unyank``), RETRY (``--retry``), RETRYCAUSE (``--retry --cause``), INSTALLED
(``--installed``), PRIORITY (``--priority`` / ``--no-priority``) or RELEASE (``--release``).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from piwheels.cli.options import per_run
from piwheels.cli.remove import version_argument
from piwheels.cli.tools import (
    BadInput,
    MasterClient,
    abi_tag,
    add_master_options,
    add_yes_option,
    confirm,
    make_tool_parser,
    project_name,
    run_tool,
)
from piwheels.failures import Cause

__all__ = ["main"]

DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")

DESCRIPTION = """\
Repair what the master knows about a project or one of its versions. With no action, add
PACKAGE (or its VERSION) by hand, as if PyPI had announced it: e.g. a version PyPI lost, so
that piw-import can import wheels for it. --skip / --unskip stop or resume building it (the
reason is shown on its project page); --yank / --unyank mark a version yanked (pip then
installs it only when pinned) or not; --retry forgets a version's failed builds so they are
queued again (asks for confirmation, since their logs are deleted); --priority builds the
version (or the project's every version, newest first) before anything else, on every ABI,
until --no-priority puts it back in its place in the queue. To add something that must not be
built, give --new with --skip.

Two actions concern the whole farm and take no PACKAGE: --retry --cause CAUSE queues again every
build that failed for CAUSE (say missing-header, after installing -dev packages on the
builders), and --installed DEBPKG says a Debian package is now installed on the builders, so
that the builds waiting for it (dep-wait) are queued again. Both take --abi for one ABI's
builders only.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = make_tool_parser("piw-add", DESCRIPTION)
    parser.add_argument(
        "package",
        nargs="?",
        type=project_name,
        metavar="PACKAGE",
        help="the project (not with --cause or --installed)",
    )
    parser.add_argument(
        "version",
        nargs="?",
        metavar="VERSION",
        help="the version, as PyPI spells it (default: the project itself; --yank, --unyank "
        "and --retry need one)",
    )
    actions = parser.add_argument_group("actions (at most one; default: add)")
    exclusive = actions.add_mutually_exclusive_group()
    for action in (
        exclusive.add_argument(
            "--skip", metavar="REASON", help="never build it, for this reason (SKIP)"
        ),
        exclusive.add_argument(
            "--unskip", action="store_true", help="build it again after a --skip (SKIP)"
        ),
        exclusive.add_argument(
            "--yank", action="store_true", help="mark the version yanked (YANK)"
        ),
        exclusive.add_argument("--unyank", action="store_true", help="undo --yank (YANK)"),
        exclusive.add_argument(
            "--retry",
            action="store_true",
            help="forget the version's failed builds and their logs so it is built again (RETRY)",
        ),
        exclusive.add_argument(
            "--installed",
            metavar="DEBPKG",
            type=debian_package,
            help="the Debian package DEBPKG is now installed on the builders: queue again the "
            "builds waiting for it (INSTALLED)",
        ),
        exclusive.add_argument(
            "--priority",
            action="store_true",
            help="build it first: move the version, or the project's every version (its newest "
            "first, its later releases too), to the front of every ABI's queue (PRIORITY)",
        ),
        exclusive.add_argument(
            "--no-priority",
            action="store_true",
            help="undo --priority: back to its place in the queue (PRIORITY)",
        ),
        exclusive.add_argument(
            "--release",
            action="store_true",
            help="publish the version's withheld wheels (RELEASE): those another builder made "
            "other bytes of (piw-master --withhold-disagreements), having decided they are "
            "sound (piw-remove builds the version again instead); or those of a release PyPI "
            "removed, served then until PyPI lists it again (piw-remove deletes them instead)",
        ),
        actions.add_argument(
            "--new",
            action="store_true",
            help="add it (ADD) even with --skip, which then gives the reason it is never built",
        ),
        actions.add_argument(
            "--cause",
            choices=[str(cause) for cause in Cause],
            metavar="CAUSE",
            help="with --retry and no PACKAGE: every build that failed for CAUSE, one of "
            f"{', '.join(Cause)} (RETRYCAUSE)",
        ),
        actions.add_argument(
            "--abi",
            type=abi_tag,
            metavar="TAG",
            help="with --retry or --installed: only for this ABI, e.g. cp311 (default: all)",
        ),
    ):
        per_run(action)
    add_yes_option(parser)
    add_master_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(build_parser(), argv, run)


def run(args: argparse.Namespace) -> None:
    action, data, done = request_for(args)
    if action == "RETRY":
        confirm(f"forget the failed builds of {_what(args)} and their logs", assume_yes=args.yes)
    elif action == "RETRYCAUSE":
        on = f" on {args.abi}" if args.abi else ""
        confirm(f"build again every build that failed for {args.cause}{on}", assume_yes=args.yes)
    with MasterClient(args.import_queue, args.timeout) as client:
        client.expect_done(action, data)
    print(done)


def request_for(args: argparse.Namespace) -> tuple[str, tuple[Any, ...], str]:
    """The message the options ask for, and what to tell the operator once it is done."""
    if args.cause is not None or args.installed is not None:
        return _farm_request(args)
    if args.package is None:
        raise BadInput("PACKAGE is needed (but for --retry --cause and --installed)")
    package = args.package
    version = None if args.version is None else version_argument(args.version)
    reason = None if args.skip is None else args.skip.strip()
    if reason == "":
        raise BadInput("--skip needs a reason (it is shown on the project page)")
    if args.abi is not None and not args.retry:
        raise BadInput("--abi goes with --retry or --installed only")
    if args.new and (
        args.unskip
        or args.yank
        or args.unyank
        or args.retry
        or args.priority
        or args.no_priority
        or args.release
    ):
        raise BadInput("--new goes with --skip only")
    if version is None and (args.yank or args.unyank or args.retry or args.release):
        raise BadInput(f"{_option(args)} needs a VERSION")
    what = _what(args)
    if args.release:
        assert version is not None
        return "RELEASE", (package, version), f"published the withheld wheels of {what}"
    if args.priority or args.no_priority:
        done = (
            f"{what} goes to the front of the build queue"
            if args.priority
            else f"{what} is back in its place in the build queue"
        )
        return "PRIORITY", (package, version, args.priority), done
    if args.new or not (reason or args.unskip or args.yank or args.unyank or args.retry):
        skip = reason or ""
        return "ADD", (package, version, skip), f"added {what}" + _skipped(skip)
    if reason is not None:
        return "SKIP", (package, version, reason), f"{what} will not be built ({reason})"
    if args.unskip:
        return "SKIP", (package, version, ""), f"{what} may be built again"
    if args.yank or args.unyank:
        return (
            "YANK",
            (package, version, args.yank),
            f"{'yanked' if args.yank else 'unyanked'} {what}",
        )
    on = f" on {args.abi}" if args.abi else ""
    return "RETRY", (package, version, args.abi), f"the failed builds of {what}{on} will be retried"


def _farm_request(args: argparse.Namespace) -> tuple[str, tuple[Any, ...], str]:
    """The requests that concern every project: RETRYCAUSE and INSTALLED."""
    on = f" on {args.abi}" if args.abi else ""
    if args.package is not None:
        raise BadInput("--cause and --installed concern every project: no PACKAGE")
    if args.installed is not None:
        done = f"the builds waiting for {args.installed}{on} are queued again"
        return "INSTALLED", (args.installed, args.abi), done
    if not args.retry:
        raise BadInput("--cause goes with --retry")
    done = f"the builds that failed for {args.cause}{on} are queued again"
    return "RETRYCAUSE", (args.cause, args.abi), done


def debian_package(text: str) -> str:
    """A Debian package's name, as Debian policy spells them."""
    name = text.strip()
    if not DEBIAN_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"not a Debian package name: {text!r}")
    return name


def _what(args: argparse.Namespace) -> str:
    return args.package if args.version is None else f"{args.package} {args.version.strip()}"


def _option(args: argparse.Namespace) -> str:
    for option in ("yank", "unyank", "release"):
        if getattr(args, option):
            return f"--{option}"
    return "--retry"


def _skipped(reason: str) -> str:
    return f" (never to be built: {reason})" if reason else ""
