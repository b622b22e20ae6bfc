"""``piw-monitor``: a terminal view of a running master, and the keys to steer it.

It listens to the master's status queue (PUB/SUB) and sends commands to its control queue
(PUSH/PULL), both declared in :mod:`piwheels.protocols`. Quitting it leaves the master running.
"""
