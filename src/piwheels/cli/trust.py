"""``piw-trust``: the builders a master admits, by their keys.

Each build slave makes its key pair at its first start and logs its public key. The master
admits to its builder queues only the keys in its key directory's ``trusted/`` (see
:mod:`piwheels.builder_keys`); this tool adds, lists and revokes them, and prints the master's
own public key, which every slave is given (``piw-slave --master-key``). A change counts at once:
a revoked builder is dropped at its next message, its build given to another.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from piwheels import defaults
from piwheels.builder_keys import (
    MASTER_KEY,
    TRUSTED,
    KeyFileError,
    TrustedKeys,
    key_pair,
    public_key,
)
from piwheels.cli.options import ConfigError, configure_logging, make_parser, parse_args
from piwheels.private_dirs import private_directory_problem

DESCRIPTION = """\
Say which build slaves the master admits, by their keys. Each slave makes its key pair at its
first start and logs its public key; the master admits only the keys added here (to its key
directory's trusted/), at once and without a restart. A revoked slave is dropped at its next
message, and its build goes to another. 'piw-trust master' prints the master's public key, which
every slave is given (piw-slave --master-key).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("piw-trust", DESCRIPTION)
    parser.add_argument(
        "--key-dir",
        type=Path,
        default=defaults.key_dir(),
        metavar="DIR",
        help="the master's --key-dir",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = commands.add_parser("add", help="trust a builder's key")
    add.add_argument("key", metavar="KEY", help="its public key, or its slave.key file")
    add.add_argument("--label", default="", help="a note for people: whose it is, where it runs")
    commands.add_parser("list", help="list the trusted keys")
    revoke = commands.add_parser("revoke", help="stop trusting a key; its builder is dropped")
    revoke.add_argument("key", metavar="KEY", help="its fingerprint (SHA256:...) or public key")
    commands.add_parser("master", help="print the master's public key, for its slaves")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv, "trust")
    except ConfigError as exc:
        parser.error(str(exc))
    configure_logging(args)
    try:
        for line in carry_out(args):
            print(line)
    except KeyFileError as exc:
        print(f"piw-trust: {exc}", file=sys.stderr)
        return 1
    return 0


def carry_out(args: argparse.Namespace) -> list[str]:
    """Do the command *args* name; what to print."""
    trusted = TrustedKeys(args.key_dir / TRUSTED)
    if args.command == "master":
        pair, _ = key_pair(args.key_dir, MASTER_KEY, make=False)
        return [f"{pair.public.decode()}  {pair.fingerprint}"]
    if args.command == "list":
        return [
            f"{key.fingerprint}  {key.public.decode()}  "
            f"{key.added.strftime('%Y-%m-%d %H:%M')}  {key.label}".rstrip()
            for key in trusted.list()
        ]
    problem = private_directory_problem(args.key_dir)
    if problem is not None:  # the master would not start with it either
        raise KeyFileError(f"{args.key_dir} {problem}: it must be the master's user's alone")
    if args.command == "add":
        key = trusted.add(public_key(args.key), args.label)
        return [f"trusted {key.fingerprint} {key.label}".rstrip()]
    key = trusted.revoke(args.key)
    return [f"revoked {key.fingerprint} {key.label}".rstrip()]


if __name__ == "__main__":
    sys.exit(main())
