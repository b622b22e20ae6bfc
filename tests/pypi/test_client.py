"""piwheels.pypi.client against LocalPyPI: what changed, and answers older than the known serial."""

from __future__ import annotations

import pytest

from piwheels.pypi.client import PyPIClient
from piwheels.pypi.errors import PyPIUnavailable, StaleResponse
from pypi_index import LocalPyPI


def test_diff_after_add_yank_remove(index: LocalPyPI, client: PyPIClient) -> None:
    before = client.list_projects()
    known = {key: entry.serial for key, entry in before.projects.items()}
    assert client.changed_projects(known) == (before.serial, [], [])

    index.add_version("piwtest-abi3", "1.0")
    index.yank("piwtest-pure", "1.0", "oops")
    index.remove_project("piwtest-cext")

    changes = client.changed_projects(known)
    assert changes.serial == index.serial > before.serial
    # Lowest serial first: the order the changes happened in.
    assert [entry.name for entry in changes.changed] == ["piwtest-abi3", "piwtest-pure"]
    assert changes.removed == ["piwtest-cext"]

    # Recording them leaves nothing to do.
    known = {key: entry.serial for key, entry in client.list_projects().projects.items()}
    assert client.changed_projects(known) == (index.serial, [], [])


def test_stale_by_min_serial(index: LocalPyPI, client: PyPIClient) -> None:
    with pytest.raises(StaleResponse) as caught:
        client.list_projects(min_serial=index.serial + 1)
    assert isinstance(caught.value, PyPIUnavailable)  # so callers retry later
    assert (caught.value.serial, caught.value.expected) == (index.serial, index.serial + 1)

    serial = index.project_serial("piwtest-pure")
    with pytest.raises(StaleResponse, match="piwtest-pure/json"):
        client.project("piwtest-pure", min_serial=serial + 1)
