"""The master's local queues (control, status, import, log) reachable by its own user only.

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

from pathlib import Path

from piwheels.master_support.config import MasterConfig
from piwheels.private_dirs import private_directory_problem


def local_addresses(config: MasterConfig) -> dict[str, str]:
    """The local queues by their option's name."""
    return {
        "--control-queue": config.control_queue,
        "--status-queue": config.status_queue,
        "--import-queue": config.import_queue,
        "--log-queue": config.log_queue,
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
    problem = private_directory_problem(directory)
    if problem is None:
        return None
    return (
        f"{directory} (of {address}) {problem}: give the local queues a directory of their "
        "own that only this user can enter (chmod 700)"
    )


def local_queue_problem(config: MasterConfig) -> str | None:
    """The first local queue that other users could reach, and why (None if none can)."""
    for option, address in local_addresses(config).items():
        problem = socket_directory_problem(address)
        if problem is not None:
            return f"refusing {option}: {problem}"
    return None
