"""The master's settings: where slaves download from, and queues that never collide."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from piwheels.master_support.config import MasterConfig


def config(**overrides: object) -> MasterConfig:
    return MasterConfig("dbname=piwheels", Path("/srv/www"), ["cp311"], **overrides)  # type: ignore[arg-type]


def test_slaves_download_from_pypi_unless_told_otherwise() -> None:
    assert config().index_for_slaves == config().pypi_simple
    mirror = "http://mirror.local/simple/"
    assert config(slave_index=mirror).index_for_slaves == mirror
    assert config(pypi_simple=mirror).index_for_slaves == mirror


def test_every_queue_has_an_address_of_its_own() -> None:
    queues = [
        getattr(config(), each.name)
        for each in fields(MasterConfig)
        if each.name.endswith("_queue") and not each.name.startswith("insecure_")
    ]
    assert len(queues) == len(set(queues)) > 10


def test_the_insecure_builder_queues_are_closed_unless_opened() -> None:
    assert config().insecure_slave_queue is None
    assert config().insecure_file_queue is None


def test_a_building_slave_is_given_up_on_before_an_idle_one() -> None:
    defaults = config()
    assert defaults.busy_timeout < defaults.slave_timeout
    assert defaults.packages == []  # follow all of PyPI
    assert config().packages is not config().packages  # no list shared between configurations
