"""The master's local queues (control, status, import) reachable by its own user only.

An ipc:// socket is a file, and whoever can connect to it can, on the control queue, pause or
stop the farm, and on the import queue publish wheels. Whether another user can connect
depends on the socket file's mode, which comes from the umask the master happens to run
under, and in a directory everyone may write to (``/tmp``) another user can take the name
first and pose as the master to the operators' tools. So each ipc socket lives in a directory
that only the master's user can enter: made so when it is missing, and refused, as ssh refuses
a private key others can read, when it exists with access for others or belongs to someone
else. An operator's tools and monitor run as that user (``sudo -u piwheels piw-monitor``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from piwheels.master_support.config import MasterConfig

# Bits of a directory's mode that let users other than its owner in.
OTHERS = stat.S_IRWXG | stat.S_IRWXO


def local_addresses(config: MasterConfig) -> dict[str, str]:
    """The local queues by their option's name."""
    return {
        "--control-queue": config.control_queue,
        "--status-queue": config.status_queue,
        "--import-queue": config.import_queue,
    }


def socket_directory_problem(address: str) -> str | None:
    """Why *address* is no place for a local queue (None if it is, having made its directory
    where it was missing).

    Only ipc:// addresses are checked: a tcp:// one is reachable by whoever can reach its
    interface, which is the operator's choice to make.
    """
    if not address.startswith("ipc://"):
        return None
    if address.startswith("ipc://@"):
        return f"{address} is an abstract socket, which any local user can connect to"
    directory = Path(address.removeprefix("ipc://")).parent
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        return f"cannot make the directory of {address}: {exc}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} (of {address}) is not a directory"
    if info.st_uid != os.geteuid():
        return f"{directory} (of {address}) belongs to another user (uid {info.st_uid})"
    if info.st_mode & OTHERS:
        return (
            f"{directory} (of {address}) is open to other users "
            f"(mode {stat.S_IMODE(info.st_mode):o}): give the local queues a directory of "
            "their own that only this user can enter (chmod 700)"
        )
    return None


def local_queue_problem(config: MasterConfig) -> str | None:
    """The first local queue that other users could reach, and why (None if none can)."""
    for option, address in local_addresses(config).items():
        problem = socket_directory_problem(address)
        if problem is not None:
            return f"refusing {option}: {problem}"
    return None
