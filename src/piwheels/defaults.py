"""The defaults several programs share, written once: where a master listens (its queues),
where it finds PyPI, and where users reach its output. The master's own tuning is in
:class:`piwheels.master_support.config.MasterConfig`, whose defaults piw-master's options
show."""

from __future__ import annotations

SLAVE_PORT = 5555  # the Slave Driver's (the original piwheels' slaves know only these two)
FILE_PORT = 5556  # the File Juggler's
SLAVE_QUEUE = f"tcp://*:{SLAVE_PORT}"
FILE_QUEUE = f"tcp://*:{FILE_PORT}"
CONTROL_QUEUE = "ipc:///tmp/piw-control"
STATUS_QUEUE = "ipc:///tmp/piw-status"
IMPORT_QUEUE = "ipc:///tmp/piw-import"

PYPI_SIMPLE = "https://pypi.org/simple/"
PYPI_JSON = "https://pypi.org/pypi"
PUBLIC_URL = "http://127.0.0.1:8080"  # what scripts/farm serves
