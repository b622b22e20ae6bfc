"""piwheels.db.embedded.binaries: the system's PostgreSQL runs a cluster too, and a cluster is
run again by the major version that made it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pg_processes import processes_using

from piwheels.db.embedded.binaries import find_bin_dirs, server_major_version
from piwheels.db.embedded.cluster import EmbeddedPostgres


def test_embedded_postgres_system_binaries(pg_data_dir: Path) -> None:
    system = [path for path in find_bin_dirs() if "pgserver" not in path.parts]
    if not system:
        pytest.skip("no system PostgreSQL (initdb, pg_ctl, postgres) installed")
    data_dir = pg_data_dir
    with EmbeddedPostgres(data_dir, bin_dir=system[0], durable=False) as server:
        with psycopg.connect(server.dsn()) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None
        assert version[0].startswith(server_major_version(system[0]))
    # Without being told, a new instance picks binaries of the cluster's own major version.
    assert server_major_version(EmbeddedPostgres(data_dir).bin_dir) == (
        (data_dir / "PG_VERSION").read_text().strip()
    )
    assert processes_using(data_dir) == []
