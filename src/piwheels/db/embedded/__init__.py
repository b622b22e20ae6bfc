"""A private PostgreSQL server in a directory of its own: the master's zero-set-up database.

:class:`~.cluster.EmbeddedPostgres` creates a cluster in its data directory on first start
(``initdb``), starts it listening on a unix socket only (no TCP port, so nothing to collide with
and nothing reachable from the network), and stops it on request. A second start on the same
directory reuses the cluster, so a restarted master finds its database as it left it.

The PostgreSQL programs come from the ``pgserver`` package when it is installed (a relocatable
PostgreSQL 16 inside the wheel) and otherwise from the system's installation. We drive ``initdb``
and ``pg_ctl`` ourselves rather than through ``pgserver.get_server``: that keeps one code path for
both sources, lets :meth:`~.cluster.EmbeddedPostgres.stop` guarantee that no server process
survives, and avoids pgserver's per-process bookkeeping, under which a master killed with SIGKILL
leaves an entry that stops any later cleanup from stopping the server.

PostgreSQL refuses to run as root. When we are root the server runs as an unprivileged system
account (the data directory's owner, or ``postgres``, ``pgserver`` or ``nobody``), which also owns
the data directory.

- :mod:`.cluster`: one cluster's life: created, started, stopped, restarted; its databases.
- :mod:`.binaries`: which PostgreSQL programs to run it with.
- :mod:`.account`: which account runs them when we are root, and its way to the files.
- :mod:`.processes`: telling from /proc whether the server (and every child) is gone.

:class:`EmbeddedPostgresError` is here, below them all, since each of them can raise it.
"""

from __future__ import annotations


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped."""
