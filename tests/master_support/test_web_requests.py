"""How tasks ask for pages: never blocked by a Secretary that is not taking them, and the
home page's figures with the output disk's."""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zmq

from piwheels import protocols
from piwheels.master_support.web_requests import PageRequests, with_output_disk
from piwheels.records.projects import Statistics
from piwheels.transport import Socket

FIGURES = Statistics(
    1, 2, 3, 2, 0, 0, 1, 100, {}, {}, {}, {}, 0, 0, datetime(2026, 1, 1, tzinfo=UTC)
)


def test_a_project_is_asked_for_with_its_index_page_or_alone(context: zmq.Context[Any]) -> None:
    address = f"inproc://{uuid.uuid4().hex}"
    with (
        Socket(zmq.PULL, protocols.web, context=context).bind(address) as secretary,
        Socket(zmq.PUSH, PageRequests.PROTOCOL, context=context).connect(address) as sock,
    ):
        pages = PageRequests(sock)
        pages.project("foo")
        pages.project("bar", index=False)
        pages.send("SEARCH")
        assert [secretary.recv() for _ in range(3)] == [
            ("BOTH", "foo"),
            ("PROJECT", "bar"),
            ("SEARCH", protocols.NO_DATA),
        ]


def test_a_request_no_one_takes_is_dropped_not_waited_for(
    context: zmq.Context[Any], caplog: pytest.LogCaptureFixture
) -> None:
    with Socket(zmq.PUSH, PageRequests.PROTOCOL, context=context) as sock:
        # no Secretary at all: nothing could queue it
        PageRequests(sock).project("foo")
    assert "the Secretary is not taking requests: BOTH dropped" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


def test_the_home_pages_figures_carry_the_output_disks_space(tmp_path: Path) -> None:
    before = os.statvfs(tmp_path)
    figures = with_output_disk(FIGURES, tmp_path)
    after = os.statvfs(tmp_path)  # others write to the disk meanwhile
    assert figures.disk_total == after.f_blocks * after.f_frsize
    free = sorted([before.f_bavail * before.f_frsize, after.f_bavail * after.f_frsize])
    assert free[0] - (64 << 20) <= figures.disk_free <= free[1] + (64 << 20)
    assert figures._replace(disk_free=0, disk_total=0) == FIGURES
    with pytest.raises(OSError, match="No such file or directory"):
        with_output_disk(FIGURES, tmp_path / "gone")
