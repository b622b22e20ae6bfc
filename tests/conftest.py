"""Fixtures every test stands on: a real PostgreSQL, a local PyPI, interpreters, a ZeroMQ context.

The machinery lives in piwheels.db.embedded and tests/pypi_index.py; this file only wires it up.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from psycopg.conninfo import make_conninfo

from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import migrate
from pypi_index import (
    BUILD_DEPS_DIR,
    DEFAULT_CATALOGUE,
    LocalPyPI,
    SdistFactory,
    find_python,
)
from refusing_server import RefusingServer, serve_refusing

__all__ = ["find_python"]


@contextlib.contextmanager
def _postgres_home() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root the server runs as another account, which must be
    # able to traverse every directory above its data, and each new pytest session (another
    # developer's, say) makes /tmp/pytest-of-<user> private again under a running server.
    with tempfile.TemporaryDirectory(prefix="piwtest-pg-") as home:
        data_dir = Path(home) / "data"
        try:
            yield data_dir
        finally:
            # A test that left its server running must not leave it behind for good.
            EmbeddedPostgres(data_dir).stop()


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    """A ZeroMQ context of the test's own, destroyed (sockets and all) at its end."""
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def refusing_server() -> Iterator[RefusingServer]:
    with serve_refusing() as server:
        yield server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    """One PostgreSQL for the whole run (not durable: fsync off), stopped at the end."""
    with _postgres_home() as data_dir, EmbeddedPostgres(data_dir, durable=False) as server:
        yield server


@pytest.fixture
def pg_data_dir() -> Iterator[Path]:
    """A data directory (not yet made) for a test's own EmbeddedPostgres; see _postgres_home."""
    with _postgres_home() as data_dir:
        yield data_dir


@pytest.fixture
def fresh_database(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """The superuser DSN of a new, empty database, dropped (connections and all) afterwards."""
    # A test before this one may have stopped or restarted the server; start() is a no-op when
    # it is running.
    pg_server.start()
    name = f"test_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name)
    try:
        yield dsn
    finally:
        pg_server.start()
        pg_server.drop_database(name)


@pytest.fixture
def master_dsn(fresh_database: str) -> str:
    """A migrated database, as the master's unprivileged role sees it."""
    migrate(fresh_database)
    return make_conninfo(fresh_database, user="piwheels")


@pytest.fixture(scope="session")
def build_deps_dir() -> Path:
    """The wheels pip needs to build the test projects offline (setuptools, ...)."""
    if not any(BUILD_DEPS_DIR.glob("setuptools-*.whl")):
        pytest.skip(
            f"no build dependencies in {BUILD_DEPS_DIR}: run scripts/fetch-build-deps "
            "(once, with access to PyPI) to fill it"
        )
    return BUILD_DEPS_DIR


@pytest.fixture(scope="session")
def test_sdists(tmp_path_factory: pytest.TempPathFactory) -> SdistFactory:
    """The sdists of tests/packages, the default catalogue's made up front in one batch."""
    factory = SdistFactory(tmp_path_factory.mktemp("sdists"))
    factory.build((project, version) for project, version, _ in DEFAULT_CATALOGUE)
    return factory


@pytest.fixture
def pypi_index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path: Path
) -> Iterator[LocalPyPI]:
    """A running LocalPyPI with the default catalogue (see DEFAULT_CATALOGUE) and build deps."""
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=tmp_path) as index:
        index.add_catalogue(DEFAULT_CATALOGUE)
        yield index


def _python(version: str) -> Path:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no CPython {version} under pyenv (pyenv install {version})")
    return python


@pytest.fixture(scope="session")
def python39() -> Path:
    return _python("3.9")


@pytest.fixture(scope="session")
def python311() -> Path:
    return _python("3.11")


@pytest.fixture(scope="session")
def python313() -> Path:
    return _python("3.13")
