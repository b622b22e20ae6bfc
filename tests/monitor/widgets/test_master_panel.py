"""The panel at the top, rendered from what the app binds to it."""

from __future__ import annotations

import io
from datetime import timedelta

from fake_master import NOW, STARTED, statistics
from rich.console import Console

from piwheels.monitor.widgets import MasterPanel
from piwheels.records.status import MasterStatus


def shown(panel: MasterPanel) -> str:
    console = Console(width=140, file=io.StringIO())
    console.print(panel.render())
    return console.file.getvalue()  # type: ignore[attr-defined]


def panel() -> MasterPanel:
    made = MasterPanel("ipc:///tmp/piw-status")
    made.now = NOW
    return made


def test_before_the_master_answers_it_says_where_it_waits() -> None:
    text = shown(panel())
    assert "waiting for the master on ipc:///tmp/piw-status" in text
    assert text.count(" - ") + text.count(" -\n") >= 3  # no queue, builds or output yet


def test_the_masters_state_queue_builds_and_output() -> None:
    made = panel()
    made.master = MasterStatus("paused", STARTED, "0.1.0")
    made.heard = NOW - timedelta(seconds=4)
    made.queue = {"cp39": 1200, "cp311": 17}
    made.stats = statistics()
    text = shown(made)
    assert "PAUSED  version 0.1.0, up 2h14m05s  (last heard 4s ago)" in text
    assert "cp39 1,200   cp311 17   (total 1,217)" in text
    assert "12 in the last hour (2 failed)   9,000 in all, 90% succeeded" in text
    assert "cp311 failures today: missing-header 2" in text
    assert "40.0G free of 100.0G   1,234 packages, 5,678 versions, 8,000 files (3.0G)" in text
    assert "4,321 in the last 30 days   98,765 in all   most: numpy 2,000, pillow 900" in text


def test_a_silent_master_and_a_full_disk_stand_out() -> None:
    made = panel()
    made.master = MasterStatus("running", STARTED, "0.1.0")
    made.heard = NOW - timedelta(minutes=3)
    made.stats = statistics(disk_free=5 << 30)
    master_line = made._master_line()
    assert "(last heard 3m00s ago)" in master_line.plain
    assert any("red" in str(span.style) for span in master_line.spans)
    assert "red" in str(made._output_line().style)
    made.stats = statistics(disk_free=50 << 30)
    assert "red" not in str(made._output_line().style)
