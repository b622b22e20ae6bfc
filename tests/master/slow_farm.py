"""The farm of the fault tests: one project, piwtest-slow, whose build takes 8 s, so that
there is time to break something while it runs."""

from __future__ import annotations

from pathlib import Path

from farm import configure
from piwheels.master_support.config import MasterConfig
from pypi_index import LocalPyPI

SLOW_BUILDS = (
    "SELECT b.built_by, b.status, b.outcome, b.cause, b.requeued_at IS NOT NULL "
    "FROM builds b JOIN versions v USING (version_id) "
    "WHERE v.package = 'piwtest-slow' ORDER BY b.build_id"
)


def slow_farm(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    pypi_index.add_version("piwtest-slow", "1.0")
    return configure(master_dsn, tmp_path, pypi_index, ["cp311"], packages=["piwtest-slow"])
