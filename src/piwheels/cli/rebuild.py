"""``piw-rebuild``: have the master rewrite parts of the web output now."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from piwheels.cli.tools import (
    BadInput,
    MasterClient,
    add_master_options,
    make_tool_parser,
    project_name,
    run_tool,
)

__all__ = ["main"]

# The command-line words for the REBUILD parts of the protocol.
PARTS = {"home": "HOME", "search": "SEARCH", "site": "SITE", "project": "PROJECT", "both": "BOTH"}

DESCRIPTION = """\
Ask the master to rewrite part of the web output: the home page (home), the search index
(search), the pages of the whole site (site: the FAQ, the 404 page, the index root and the
sitemap), a project's page (project), or its page and its package index (both). Without
PACKAGE, project and both rewrite every project's. The master queues the pages and returns at
once; they are written within seconds. Exit status: 0 queued, 1 the master refused (e.g. no
such package; its message is printed), 2 bad arguments, 3 the master is not running or did not
answer.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = make_tool_parser("piw-rebuild", DESCRIPTION)
    parser.add_argument("part", choices=list(PARTS), help="what to rewrite")
    parser.add_argument(
        "package",
        nargs="?",
        type=project_name,
        metavar="PACKAGE",
        help="the project (project and both only; default: every project)",
    )
    add_master_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(build_parser(), argv, run)


def run(args: argparse.Namespace) -> None:
    part = PARTS[args.part]
    if part in ("HOME", "SEARCH", "SITE") and args.package is not None:
        raise BadInput(f"{args.part} takes no PACKAGE (got {args.package!r})")
    with MasterClient(args.import_queue, args.timeout) as client:
        client.expect_done("REBUILD", (part, args.package))
    what = f"of {args.package}" if args.package else "of every project"
    print(f"rebuilding {args.part}" + (f" pages {what}" if part in ("PROJECT", "BOTH") else ""))
