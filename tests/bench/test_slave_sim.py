"""The simulator's own bookkeeping: its slaves wake when they should, and only then."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from slave_sim import Watch  # noqa: E402


class Sleeper:
    """What Watch needs of a slave: the moment it is to wake, if any."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.wake_at: float | None = None


def test_slaves_wake_in_order_of_their_alarms() -> None:
    watch = Watch()
    late: Any = Sleeper("late")
    early: Any = Sleeper("early")
    watch.alarm(late, 20.0)
    watch.alarm(early, 10.0)
    assert watch.next_alarm(default=99.0) == 10.0
    assert watch.due(5.0) == []
    assert watch.due(15.0) == [early]
    assert watch.due(25.0) == [late]
    assert watch.next_alarm(default=99.0) == 99.0


def test_an_alarm_set_again_replaces_the_first() -> None:
    watch = Watch()
    slave: Any = Sleeper("busy")
    watch.alarm(slave, 10.0)
    watch.alarm(slave, 30.0)  # e.g. a build that runs longer: the first alarm no longer counts
    assert watch.due(20.0) == []
    assert watch.due(30.0) == [slave]


def test_a_slave_woken_otherwise_ignores_its_alarm() -> None:
    watch = Watch()
    slave: Any = Sleeper("woken")
    watch.alarm(slave, 10.0)
    slave.wake_at = None  # woken by its own reply, as SimSlave.wake does
    assert watch.due(10.0) == []
