"""The defaults the programs share: each finds the master where it listens out of the box."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from piwheels import defaults
from piwheels.cli import importer, master, slave, tools
from piwheels.master_support.config import MasterConfig
from piwheels.monitor import app


def port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_slaves_connect_where_the_master_listens() -> None:
    listening = master.build_parser().parse_args([])
    connecting = slave.make_slave_parser().parse_args([])
    assert port(listening.slave_queue) == connecting.slave_port == defaults.SLAVE_PORT
    assert port(listening.file_queue) == connecting.file_port == defaults.FILE_PORT
    # the original piwheels' slaves know only these two
    assert (defaults.SLAVE_PORT, defaults.FILE_PORT) == (5555, 5556)


def test_the_operators_tools_connect_where_the_master_listens() -> None:
    listening = master.build_parser().parse_args([])
    monitor = app.build_parser().parse_args([])
    assert monitor.status_queue == listening.status_queue == defaults.STATUS_QUEUE
    assert monitor.control_queue == listening.control_queue == defaults.CONTROL_QUEUE
    imports = importer.build_parser().parse_args(["foo-1.0-py3-none-any.whl"])
    assert imports.import_queue == listening.import_queue == defaults.IMPORT_QUEUE
    assert port(imports.file_queue) == defaults.FILE_PORT
    assert tools.DEFAULT_IMPORT_QUEUE == defaults.IMPORT_QUEUE


def test_each_local_queue_is_a_path_of_its_own() -> None:
    local = [defaults.CONTROL_QUEUE, defaults.STATUS_QUEUE, defaults.IMPORT_QUEUE]
    assert all(address.startswith("ipc:///") for address in local)
    assert len(set(local)) == 3


def test_the_master_follows_pypi_and_serves_its_output_by_default() -> None:
    config = MasterConfig("dbname=piwheels", Path("/srv/www"), ["cp311"])
    assert (config.pypi_simple, config.pypi_json) == (defaults.PYPI_SIMPLE, defaults.PYPI_JSON)
    assert config.index_for_slaves == defaults.PYPI_SIMPLE
    assert config.public_url == defaults.PUBLIC_URL
    assert urlsplit(defaults.PYPI_SIMPLE).path == "/simple/"
