"""A whole farm on one machine, for trying piwheels: the master on its embedded database, one
build slave for the Python running this, and the web output served on localhost, its downloads
counted (the server's access log piped to piw-logger).

Run as ``python -m piwheels.cli.farm`` (the README's ``scripts/farm`` does). Every process it
starts, it stops by its id on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from piwheels import defaults
from piwheels.builder_keys import (
    MASTER_KEY,
    PUBLIC_SUFFIX,
    SLAVE_KEY,
    TRUSTED,
    TrustedKeys,
    key_pair,
)
from piwheels.cli.options import LOG_FORMAT
from piwheels.master_support.config import DEFAULT_PACKAGES
from piwheels.web.server import PipedAccessLog, serve

log = logging.getLogger("piwheels.farm")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/farm",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("piwheels-data").absolute(),
        help="the database, the web output and the slave's work area",
    )
    parser.add_argument("--port", type=int, default=8080, help="serve the output on this port")
    parser.add_argument(
        "--package",
        action="append",
        metavar="NAME",
        help=f"a project to follow (repeatable; default: {' '.join(DEFAULT_PACKAGES)})",
    )
    parser.add_argument("--pypi-simple", default=defaults.PYPI_SIMPLE, metavar="URL")
    parser.add_argument("--pypi-json", default=defaults.PYPI_JSON, metavar="URL")
    return parser


def provision_keys(data: Path) -> list[str]:
    """Make the master's key pair and the local slave's (each once), have the master trust the
    slave's, and return the slave's options for them: what an operator does by hand with
    piw-trust for a slave on another machine."""
    master_keys = data / "keys"  # piw-master's default --key-dir under --data-dir
    key_pair(master_keys, MASTER_KEY)
    slave_keys = data / "slave-keys"
    slave, _ = key_pair(slave_keys, SLAVE_KEY)
    trusted = TrustedKeys(master_keys / TRUSTED)
    if trusted.is_trusted(slave.public) is None:
        trusted.add(slave.public, "scripts/farm's local slave")
    master_key = master_keys / f"{MASTER_KEY}{PUBLIC_SUFFIX}"
    return ["--key-dir", str(slave_keys), "--master-key", str(master_key)]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    data = args.data_dir
    output = data / "www"
    output.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    log_queue = f"ipc://{data}/sockets/log"
    master = [
        str(bindir / "piw-master"),
        "--data-dir",
        str(data),
        "--output-path",
        str(output),
        "--public-url",
        f"http://127.0.0.1:{args.port}",
        "--pypi-simple",
        args.pypi_simple,
        "--pypi-json",
        args.pypi_json,
        "--slave-queue",
        f"tcp://127.0.0.1:{defaults.SLAVE_PORT}",
        "--file-queue",
        f"tcp://127.0.0.1:{defaults.FILE_PORT}",
        # a directory of their own, which the master makes for its user only
        "--control-queue",
        f"ipc://{data}/sockets/control",
        "--status-queue",
        f"ipc://{data}/sockets/status",
        "--import-queue",
        f"ipc://{data}/sockets/import",
        "--log-queue",
        log_queue,
        "--pypi-interval",
        "30",
        *[arg for name in args.package or DEFAULT_PACKAGES for arg in ("--package", name)],
    ]
    slave = [
        str(bindir / "piw-slave"),
        "-m",
        "127.0.0.1",
        "--dir",
        str(data / "slave"),
        "--sleep-interval",
        "5s",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        *provision_keys(data),
    ]
    (data / "slave").mkdir(exist_ok=True)
    # The same negotiation, redirects and ranges as deploy/nginx.conf, so that pip and uv see
    # what they would in production. Started first: a busy port then stops the demo before any
    # child process exists.
    server = serve(output, "127.0.0.1", args.port)
    # Downloads counted as in production: the server's access log to piw-logger, as Apache's
    # piped log is; started once the master listens for it (lines wait until then).
    server.access_log = access_log = PipedAccessLog(
        [str(bindir / "piw-logger"), "--log-queue", log_queue]
    )
    children = [subprocess.Popen(master)]
    children.append(subprocess.Popen(slave))
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "serving %s on http://127.0.0.1:%d/ (pip install --index-url "
        "http://127.0.0.1:%d/simple/ NAME); Ctrl-C stops everything",
        output,
        args.port,
        args.port,
    )
    try:
        # A timeout, so that the signal handlers get to run between waits.
        while not stopping.wait(0.5):
            if access_log.process is None and Path(log_queue.removeprefix("ipc://")).exists():
                access_log.start()
    finally:
        server.stop()
        access_log.close()  # its last lines reach the master before the master stops
        for child in reversed(children):  # the slave first: it says BYE to a master still there
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
