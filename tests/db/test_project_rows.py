"""A project's row as the database takes it, made without the database."""

from __future__ import annotations

from piwheels.db.project_rows import version_orders


def test_version_orders_are_packagings() -> None:
    versions = ["1.0", "1.0.post1", "1.0rc1", "1.0.dev0", "0.9", "1.0a1", "not a version"]
    orders = version_orders(versions)
    assert orders == {
        "0.9": (0, False),
        "1.0.dev0": (1, True),
        "1.0a1": (2, True),
        "1.0rc1": (3, True),
        "1.0": (4, False),
        "1.0.post1": (5, False),
        "not a version": (None, False),
    }
