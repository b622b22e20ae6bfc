"""The defaults several programs share, written once: where a master listens (its queues),
where it finds PyPI, and where users reach its output. The master's own tuning is in
:class:`piwheels.master_support.config.MasterConfig`, whose defaults piw-master's options
show."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a name (in a container)
        return str(os.geteuid())


SLAVE_PORT = 5555  # the Slave Driver's (the original piwheels' slaves know only these two)
FILE_PORT = 5556  # the File Juggler's
SLAVE_QUEUE = f"tcp://*:{SLAVE_PORT}"
FILE_QUEUE = f"tcp://*:{FILE_PORT}"
# The local queues, in a directory of the master's user only (master_support/local_queues.py):
# the operator's tools, run as that user, find them there.
SOCKET_DIR = f"/tmp/piwheels-{_user()}"  # noqa: S108 (made 700, or refused: see there)
CONTROL_QUEUE = f"ipc://{SOCKET_DIR}/control"
STATUS_QUEUE = f"ipc://{SOCKET_DIR}/status"
IMPORT_QUEUE = f"ipc://{SOCKET_DIR}/import"
LOG_QUEUE = f"ipc://{SOCKET_DIR}/log"  # piw-logger -> the Hit Counter

PYPI_SIMPLE = "https://pypi.org/simple/"
PYPI_JSON = "https://pypi.org/pypi"
PUBLIC_URL = "http://127.0.0.1:8080"  # what scripts/farm serves


def data_dir() -> Path:
    """Where piw-master keeps its embedded database, output and keys unless told otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "piwheels"


def key_dir() -> Path:
    """The master's key pair and trusted builders' keys, by default (piw-master --key-dir)."""
    return data_dir() / "keys"
