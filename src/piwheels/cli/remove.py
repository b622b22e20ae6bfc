"""``piw-remove``: take a version's wheels out of the index, to be rebuilt or never built again."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from piwheels.cli.options import per_run
from piwheels.cli.tools import (
    BadInput,
    MasterClient,
    add_master_options,
    add_yes_option,
    confirm,
    make_tool_parser,
    project_name,
    run_tool,
)

__all__ = ["main"]

DESCRIPTION = """\
Remove a version's builds and wheels from the farm: its files are deleted from the index and
its pages rewritten. Without --skip the version goes back to the build queue; with --skip it is
never built again (the reason is shown on its project page). Asks for confirmation unless --yes
is given, and refuses without --yes when not run from a terminal (exit status 2).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = make_tool_parser("piw-remove", DESCRIPTION)
    parser.add_argument("package", type=project_name, metavar="PACKAGE", help="the project")
    parser.add_argument(
        "version", metavar="VERSION", help="the version to remove, as the master knows it"
    )
    per_run(
        parser.add_argument(
            "--skip",
            metavar="REASON",
            help="never build this version again, for this reason (default: rebuild it)",
        )
    )
    add_yes_option(parser)
    add_master_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(build_parser(), argv, run)


def run(args: argparse.Namespace) -> None:
    version = version_argument(args.version)
    if args.skip is not None and not args.skip.strip():
        raise BadInput("--skip needs a reason (it is shown on the project page)")
    skip = (args.skip or "").strip()
    then = f"never build it again ({skip})" if skip else "build it again"
    confirm(f"remove {args.package} {version} and its wheels, and {then}", assume_yes=args.yes)
    with MasterClient(args.import_queue, args.timeout) as client:
        client.expect_done("REMOVE", (args.package, version, skip))
    print(f"removed {args.package} {version}" + (f" (skipped: {skip})" if skip else ""))


def version_argument(text: str) -> str:
    """A version as typed: any spelling the master may hold, but not blank or multi-line."""
    version = text.strip()
    if not version or any(c.isspace() for c in version):
        raise BadInput(f"{text!r} is not a version")
    return version
