"""``piw-master``: run the build farm's master."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import psycopg
from packaging.utils import canonicalize_name
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from piwheels import defaults
from piwheels.abis import UnknownABI, sorted_abis
from piwheels.cli.options import ConfigError, configure_logging, make_parser, parse_args
from piwheels.db.database import Database
from piwheels.db.embedded import EmbeddedPostgresError
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import SchemaError, migrate
from piwheels.heap import limit_arenas
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig

log = logging.getLogger("piwheels.cli.master")
MASTER_ROLE = "piwheels"
# The main arena only: its free top is what the master's periodic malloc_trim gives back. The
# tasks take turns on the interpreter lock; libzmq's I/O thread is the one other that allocates.
MALLOC_ARENAS = 1


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "piw-master",
        "Run the piwheels master: follow PyPI, queue builds, "
        "drive build slaves and store their wheels.",
    )
    parser.add_argument(
        "-d",
        "--dsn",
        help="the database to use (a libpq connection string for "
        "the master's unprivileged role); by default a private PostgreSQL is run "
        "in DATA_DIR/postgres and stopped on exit",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir(),
        help="where the embedded database (and, by default, the output and keys) live",
    )
    parser.add_argument(
        "--key-dir",
        type=Path,
        metavar="DIR",
        help="the master's key pair (made at its first start) and its trusted builders' keys "
        "(piw-trust); default: DATA_DIR/keys",
    )
    parser.add_argument(
        "-o", "--output-path", type=Path, help="the web output directory (default: DATA_DIR/www)"
    )
    parser.add_argument(
        "--public-url",
        default=MasterConfig.public_url,
        metavar="URL",
        help="where users reach the web output (the install lines on its pages); the default "
        "is what scripts/farm serves",
    )
    parser.add_argument(
        "--contact",
        default=MasterConfig.contact,
        metavar="ADDRESS",
        help="how users reach the farm's operator (an e-mail or web address), for the site's "
        "FAQ; by default it tells them to write to the operator",
    )
    parser.add_argument(
        "--pypi-simple",
        default=MasterConfig.pypi_simple,
        metavar="URL",
        help="PyPI's simple index (PEP 691 JSON), to discover changed projects",
    )
    parser.add_argument(
        "--pypi-json",
        default=MasterConfig.pypi_json,
        metavar="URL",
        help="PyPI's JSON API, for each project's versions",
    )
    parser.add_argument(
        "--slave-index",
        metavar="URL",
        help="the index slaves download sdists from (default: --pypi-simple)",
    )
    parser.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="NAME",
        help="follow only this project (repeatable); default: all of PyPI",
    )
    parser.add_argument(
        "--package-list",
        type=Path,
        metavar="FILE",
        help="follow only the projects named in FILE, one a line (# comments)",
    )
    parser.add_argument(
        "--build-abi",
        action="append",
        default=[],
        metavar="TAG",
        help="an ABI to build for, e.g. cp39 (repeatable); default: the ABI "
        "of the Python running the master",
    )
    parser.add_argument(
        "--pypi-interval",
        type=float,
        default=MasterConfig.pypi_interval,
        metavar="SECONDS",
        help="how often to look for changes on PyPI",
    )
    parser.add_argument(
        "--queue-interval",
        type=float,
        default=MasterConfig.queue_interval,
        metavar="SECONDS",
        help="how often the Slave Driver's view of the build queue is refreshed",
    )
    parser.add_argument(
        "--slave-timeout",
        type=float,
        default=MasterConfig.slave_timeout.total_seconds(),
        metavar="SECONDS",
        help="silence after which a slave is dropped and its build given back",
    )
    parser.add_argument(
        "--busy-timeout",
        type=float,
        default=MasterConfig.busy_timeout.total_seconds(),
        metavar="SECONDS",
        help="silence after which a building slave (which says BUSY every 10 seconds) is "
        "dropped and its build given back",
    )
    parser.add_argument(
        "--give-back-tries",
        type=int,
        default=MasterConfig.give_back_tries,
        metavar="N",
        help="a build failing for a passing cause (the slave lost, the network, a full disk, "
        "no sdist yet, out of memory) is tried this many times in all before it is failed",
    )
    parser.add_argument(
        "--give-back-delay",
        type=float,
        default=MasterConfig.give_back_delay.total_seconds(),
        metavar="SECONDS",
        help="how long such a build waits before its second try; doubled before each next",
    )
    parser.add_argument(
        "--cross-check-first",
        type=int,
        default=MasterConfig.cross_check_first,
        metavar="N",
        help="another builder (of the ABI, with another key) builds again the first N builds "
        "of every builder key, and its wheels must be the published ones",
    )
    parser.add_argument(
        "--cross-check-share",
        type=float,
        default=MasterConfig.cross_check_share,
        metavar="FRACTION",
        help="... and this share of the builds after those (0 to 1)",
    )
    parser.add_argument(
        "--withhold-disagreements",
        action="store_true",
        help="take a wheel out of the index, into --withheld-dir, when another builder made "
        "other bytes of it, until an operator decides (piw-add --release, or piw-remove)",
    )
    parser.add_argument(
        "--withheld-dir",
        type=Path,
        metavar="DIR",
        help="where withheld wheels are kept, out of the web server's reach (default: beside "
        "the output, OUTPUT-withheld)",
    )
    parser.add_argument(
        "--removal-grace",
        type=float,
        default=MasterConfig.removal_grace.total_seconds(),
        metavar="SECONDS",
        help="how long a release or project removed from PyPI, or a project PyPI "
        "quarantines, is still served before its wheels are withheld (default: 0, at once)",
    )
    parser.add_argument(
        "--min-free-space",
        type=int,
        default=MasterConfig.min_free_space,
        metavar="BYTES",
        help="below this much free space on the output disk, slaves SLEEP",
    )
    parser.add_argument(
        "--max-memory",
        type=int,
        default=MasterConfig.max_memory,
        metavar="BYTES",
        help="above this much resident memory, end every connection on the builder queues, "
        "freeing what their peers made ZeroMQ hold (default: 2 GiB)",
    )
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="do not follow PyPI (only build what the database already holds)",
    )
    queues = parser.add_argument_group("queues (ZeroMQ addresses)")
    queues.add_argument(
        "--slave-queue",
        default=MasterConfig.slave_queue,
        metavar="ADDR",
        help="where build slaves talk to the Slave Driver",
    )
    queues.add_argument(
        "--file-queue",
        default=MasterConfig.file_queue,
        metavar="ADDR",
        help="where build slaves send files to the File Juggler",
    )
    queues.add_argument(
        "--insecure-slave-queue",
        metavar="ADDR",
        help="also listen here, with no keys, for build slaves that cannot speak CurveZMQ "
        "(the original piwheels slaves); anyone who reaches it can build. Off by default",
    )
    queues.add_argument(
        "--insecure-file-queue",
        metavar="ADDR",
        help="the File Juggler's queue for those slaves (needed with --insecure-slave-queue)",
    )
    queues.add_argument(
        "--control-queue",
        default=MasterConfig.control_queue,
        metavar="ADDR",
        help="where the monitor and tools send control commands",
    )
    queues.add_argument(
        "--status-queue",
        default=MasterConfig.status_queue,
        metavar="ADDR",
        help="where the master publishes its status to monitors",
    )
    queues.add_argument(
        "--import-queue",
        default=MasterConfig.import_queue,
        metavar="ADDR",
        help="where piw-import, piw-remove and piw-rebuild talk to Mr. Chase",
    )
    queues.add_argument(
        "--log-queue",
        default=MasterConfig.log_queue,
        metavar="ADDR",
        help="where piw-logger sends what the web server's access logs hold",
    )
    return parser


def read_package_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read package list {str(path)!r}: {exc}") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def current_abi() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def main(argv: Sequence[str] | None = None) -> int:
    # Before any thread starts: what the master's threads free goes back (see limit_arenas).
    limit_arenas(MALLOC_ARENAS)
    parser = build_parser()
    try:
        args = parse_args(parser, argv, "master")
        configure_logging(args, batched=True)  # a daemon: see cli.log_output
        packages = list(args.package)
        if args.package_list is not None:
            packages += read_package_list(args.package_list)
        abis = sorted_abis(args.build_abi or [current_abi()])
    except (ConfigError, UnknownABI) as exc:
        parser.error(str(exc))
    if (args.insecure_slave_queue is None) != (args.insecure_file_queue is None):
        parser.error("--insecure-slave-queue and --insecure-file-queue go together")
    output = args.output_path or args.data_dir / "www"
    embedded = None
    try:
        if args.dsn:
            dsn = args.dsn
        else:
            embedded = EmbeddedPostgres(args.data_dir / "postgres")
            superuser = embedded.start()
            migrate(superuser, master_role=MASTER_ROLE)
            dsn = make_conninfo(superuser, user=MASTER_ROLE)
        output.mkdir(parents=True, exist_ok=True)
        db = Database(dsn)
        db.set_build_abis(abis)
        db.close()
        config = MasterConfig(
            dsn=dsn,
            output_path=output,
            public_url=args.public_url,
            contact=args.contact,
            build_abis=[abi.abi_tag for abi in abis],
            pypi_simple=args.pypi_simple,
            pypi_json=args.pypi_json,
            slave_index=args.slave_index,
            packages=sorted({canonicalize_name(p) for p in packages}),
            pypi_interval=args.pypi_interval,
            queue_interval=args.queue_interval,
            slave_timeout=timedelta(seconds=args.slave_timeout),
            busy_timeout=timedelta(seconds=args.busy_timeout),
            give_back_tries=max(args.give_back_tries, 1),
            give_back_delay=timedelta(seconds=max(args.give_back_delay, 0.0)),
            min_free_space=args.min_free_space,
            max_memory=args.max_memory,
            cross_check_first=max(args.cross_check_first, 0),
            cross_check_share=min(max(args.cross_check_share, 0.0), 1.0),
            withhold_disagreements=args.withhold_disagreements,
            withheld_path=args.withheld_dir,
            removal_grace=timedelta(seconds=max(args.removal_grace, 0.0)),
            slave_queue=args.slave_queue,
            file_queue=args.file_queue,
            key_dir=args.key_dir or args.data_dir / "keys",
            insecure_slave_queue=args.insecure_slave_queue,
            insecure_file_queue=args.insecure_file_queue,
            control_queue=args.control_queue,
            status_queue=args.status_queue,
            import_queue=args.import_queue,
            log_queue=args.log_queue,
        )
        log.info("database %s, output %s, ABIs %s", _safe_dsn(dsn), output, config.build_abis)
        if config.packages:
            log.info("following only: %s", ", ".join(config.packages))
        return PiwMaster(config, follow_pypi=not args.no_follow, database=embedded).run()
    except (SchemaError, EmbeddedPostgresError, psycopg.Error, OSError) as exc:
        log.critical("cannot start: %s", exc)
        return 2
    finally:
        if embedded is not None:
            embedded.stop()


def _safe_dsn(dsn: str) -> str:
    """The DSN without its password, for the log."""
    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    return make_conninfo("", **params)
