"""Every message on every socket and pipe, declared once.

- :mod:`.base`: what a protocol is, and the OK/ERROR replies of the master's request queues;
- :mod:`.wire`: the spec's protocols with slaves and operators' tools, and the status queue;
- :mod:`.original`: the original piwheels slaves' dialect of the slave and file queues;
- :mod:`.internal`: the master's queues between its main thread and its tasks;
- :mod:`.messages`: the named types their data decodes into (records several layers share are
  in :mod:`piwheels.records`).

The protocols themselves are named here, so that code says ``protocols.slave_driver``.
"""

from piwheels.protocols import original, wire
from piwheels.protocols.base import NO_DATA, Dialect, Failure, NoData, Protocol
from piwheels.protocols.internal import (
    architect,
    fetcher,
    file_juggler_control,
    master_control,
    oracle,
    page_writer,
    seraph_workers,
    slave_commands,
    task_control,
    web,
)
from piwheels.protocols.wire import (
    file_juggler,
    hit_counter,
    master_commands,
    mr_chase,
    slave_driver,
    status,
)

# How a slave may speak, tried in this order on its first message (HELLO).
SLAVE_DIALECTS = (wire.slave_dialect, original.slave_dialect)

__all__ = [
    "NO_DATA",
    "SLAVE_DIALECTS",
    "Dialect",
    "Failure",
    "NoData",
    "Protocol",
    "architect",
    "fetcher",
    "file_juggler",
    "file_juggler_control",
    "hit_counter",
    "master_commands",
    "master_control",
    "mr_chase",
    "oracle",
    "original",
    "page_writer",
    "seraph_workers",
    "slave_commands",
    "slave_driver",
    "status",
    "task_control",
    "web",
]
