"""``piw-init-db``: create the piwheels database schema, or upgrade it to this version."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg

from piwheels.cli.options import ConfigError, configure_logging, make_parser, parse_args
from piwheels.db.migrate import SchemaError, current_version, latest_version, migrate

log = logging.getLogger("piwheels.cli.init_db")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(
        "piw-init-db",
        "Create the piwheels schema in a database, or upgrade "
        "it to this version of piwheels (downgrades are refused). Run it as a "
        "database superuser; the master itself runs as an unprivileged role.",
    )
    parser.add_argument(
        "-d",
        "--dsn",
        required=False,
        default="dbname=piwheels",
        help="a libpq connection string for a superuser on the database",
    )
    parser.add_argument(
        "-u",
        "--user",
        default="piwheels",
        help="the master's (unprivileged) "
        "role: created if missing, granted SELECT and EXECUTE only",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only say which version the database is at and would be brought to",
    )
    try:
        args = parse_args(parser, argv, "init-db")
    except ConfigError as exc:
        parser.error(str(exc))
    configure_logging(args)
    try:
        if args.dry_run:
            with psycopg.connect(args.dsn) as conn:
                have = current_version(conn)
            log.info(
                "database is at schema version %d; this piwheels is %d", have, latest_version()
            )
            return 0
        version = migrate(args.dsn, master_role=args.user)
    except (SchemaError, psycopg.Error) as exc:
        log.critical("%s", exc)
        return 1
    log.info("database is at schema version %d", version)
    return 0
