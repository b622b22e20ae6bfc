"""``piw-monitor``: a terminal view of a running master, and the keys to steer it.

It subscribes to the master's status queue (the master's side is an XPUB that takes only
subscriptions a status message can match) and sends commands to its control queue (PUSH/PULL),
both declared in :mod:`piwheels.protocols`. Quitting it leaves the master running.
"""
