"""Page requests sent to a running master's Secretary by hand, as its tasks send them."""

from __future__ import annotations

import zmq

from farm import MasterThread
from piwheels import protocols
from piwheels.protocols import NO_DATA
from piwheels.transport import Socket


def ask_for_pages(master: MasterThread, *requests: tuple[str, str]) -> None:
    # a socket of the master's own context (inproc), so it must be closed before the master stops
    sock = Socket(zmq.PUSH, reversed(protocols.web), context=master.master.context)
    try:
        sock.connect(master.config.web_queue)
        for action, package in requests:
            sock.send(action, package or NO_DATA)
    finally:
        sock.zsock.close(linger=2000)
