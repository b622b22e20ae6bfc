"""Operators' repairs (Mr. Chase): adding, removing, skipping and retrying by hand."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from piwheels.db.connection import DatabaseConnection
from piwheels.db.project_rows import version_orders
from piwheels.failures import Cause


class Repairs(DatabaseConnection):
    """Operators' repairs, for :class:`~piwheels.db.database.Database`."""

    def package_exists(self, package: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM packages WHERE package = %s", (package,))
        return row.fetchone() is not None

    def version_exists(self, package: str, version: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM versions WHERE package = %s AND version = %s", (package, version)
        )
        return row.fetchone() is not None

    def remove_version(self, package: str, version: str, skip: str) -> list[str]:
        cur = self.conn.execute(
            "SELECT * FROM remove_version(%s, %s, %s)", (package, version, skip)
        )
        return [filename for (filename,) in cur]

    def add_by_hand(self, package: str, version: str | None, skip: str) -> None:
        """Record *package* (and *version*) by hand, the version in its place in the
        project's order (worked out with packaging, as for PyPI's versions)."""
        conn = self.conn
        with conn.transaction():
            orders: list[dict[str, Any]] = []
            if version is not None:
                listed = [
                    v
                    for (v,) in conn.execute(
                        "SELECT version FROM versions WHERE package = %s AND NOT removed",
                        (package,),
                    )
                ]
                places = version_orders([*listed, version])
                orders = [
                    {"version": v, "version_order": order, "prerelease": pre}
                    for v, (order, pre) in places.items()
                ]
            conn.execute(
                "SELECT add_by_hand(%s, %s, %s, %s)", (package, version, skip, Jsonb(orders))
            )

    def requeue_given_back(self) -> list[int]:
        """Requeue the give-backs whose time has come; returns their build ids."""
        return [bid for (bid,) in self.conn.execute("SELECT requeue_given_back()")]

    def retry_cause(self, cause: str, abi_tag: str | None) -> list[int]:
        """Requeue every standing failure (failed or dep-wait) of *cause*, on *abi_tag* or on
        every ABI; returns the build ids. An unknown cause is refused."""
        if cause not in set(Cause):
            raise ValueError(f"no such cause: {cause} (one of {', '.join(Cause)})")
        return [bid for (bid,) in self.conn.execute("SELECT retry_cause(%s, %s)", (cause, abi_tag))]

    def debian_installed(self, package: str, abi_tag: str | None) -> list[int]:
        """The Debian *package* is now on the builders of *abi_tag* (None: all): requeue the
        builds waiting for it; returns their build ids."""
        return [
            bid
            for (bid,) in self.conn.execute("SELECT debian_installed(%s, %s)", (package, abi_tag))
        ]

    def set_priority(self, package: str, version: str | None, wanted: bool) -> None:
        """Put *package* *version* (or, with None, the project's every version) at the front
        of each ABI's queue it is in, or (*wanted* false) take it back to its place."""
        self.conn.execute("SELECT set_priority(%s, %s, %s)", (package, version, wanted))

    def set_skip(self, package: str, version: str | None, reason: str) -> None:
        self.conn.execute("SELECT set_skip(%s, %s, %s)", (package, version, reason))

    def set_yanked(self, package: str, version: str, yanked: bool) -> None:
        self.conn.execute("SELECT set_yanked(%s, %s, %s)", (package, version, yanked))

    def retry_failed(self, package: str, version: str, abi_tag: str | None) -> int:
        row = self.conn.execute(
            "SELECT retry_failed(%s, %s, %s)", (package, version, abi_tag)
        ).fetchone()
        return int(row[0]) if row else 0
