"""Which PostgreSQL programs run the embedded cluster: pgserver's bundled ones, or the system's.

A cluster only runs under the major version that created it, so a data directory made by one
installation must find that version again among those present, whatever order they are found in.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

from piwheels.db.embedded import EmbeddedPostgresError

_PROGRAMS = ("initdb", "pg_ctl", "postgres")


def find_bin_dirs() -> list[Path]:
    """Directories holding a complete PostgreSQL (initdb, pg_ctl, postgres), best first.

    pgserver's bundled build comes first; then the system's, found through ``pg_config``, ``PATH``
    and Debian's versioned directories (newest first).
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec("pgserver")
    # Located without importing pgserver, whose import sets up locks and atexit handlers we do
    # not use; pginstall/bin is where its wheel puts the programs.
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(
            Path(location) / "pginstall" / "bin" for location in spec.submodule_search_locations
        )
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None:
        # Resolved, so that initdb and postgres come from the same installation as pg_ctl even
        # when only pg_ctl is linked onto PATH.
        candidates.append(Path(pg_ctl).resolve().parent)
    candidates.extend(
        sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
            reverse=True,
        )
    )
    found: list[Path] = []
    for candidate in candidates:
        if candidate not in found and all((candidate / name).is_file() for name in _PROGRAMS):
            found.append(candidate)
    return found


def server_major_version(bin_dir: Path) -> str:
    """The major version of the PostgreSQL in *bin_dir*, as written in a cluster's PG_VERSION."""
    # --version is answered before postgres's refusal to run as root, so this works as root too.
    result = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
    if result.returncode != 0 or match is None:
        raise EmbeddedPostgresError(
            f"cannot tell the version of {bin_dir / 'postgres'!s}: "
            f"{result.stdout + result.stderr!r}"
        )
    return match.group(1)


def choose_bin_dir(data_dir: Path) -> Path:
    """The programs to run the cluster in *data_dir* with: the best of :func:`find_bin_dirs`, or
    for a cluster already made, the best of the major version that made it."""
    candidates = find_bin_dirs()
    if not candidates:
        raise EmbeddedPostgresError(
            "no PostgreSQL found: install the pgserver package (pip install pgserver) "
            "or the system's PostgreSQL server (initdb, pg_ctl and postgres)"
        )
    try:
        wanted = (data_dir / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return candidates[0]
    # A cluster only runs under the major version that created it.
    for candidate in candidates:
        if server_major_version(candidate) == wanted:
            return candidate
    raise EmbeddedPostgresError(
        f"the cluster in {data_dir} was made by PostgreSQL {wanted}, and none of "
        f"{[str(path) for path in candidates]} is that version"
    )
