"""The whole-master fixtures of tests/master, for the tests of what the tasks are built on."""

from master.conftest import farm_config, master, status

__all__ = ["farm_config", "master", "status"]
