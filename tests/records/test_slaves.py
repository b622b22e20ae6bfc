"""What a slave says of itself, and the states the master and the monitor know it in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from piwheels.records.slaves import SlaveHello, SlaveState, SlaveStats


def test_hello_keeps_the_specs_order() -> None:
    # HELLO travels as a plain array of these ten, in this order
    assert SlaveHello._fields == (
        "build_timeout",
        "master_timeout",
        "py_version_tag",
        "abi_tag",
        "platform_tag",
        "label",
        "os_name",
        "os_version",
        "board_revision",
        "board_serial",
    )
    hello = SlaveHello(timedelta(hours=3), timedelta(minutes=5), *["x"] * 8)
    assert hello.build_timeout == timedelta(hours=3)


def test_stats_keep_the_specs_order() -> None:
    # IDLE and BUSY carry these seven first, in this order; anything of ours comes after them
    assert SlaveStats._fields[:7] == (
        "timestamp",
        "disk_total",
        "disk_free",
        "mem_total",
        "mem_free",
        "load_avg",
        "cpu_temp",
    )
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert tuple(SlaveStats(now, 10, 5, 8, 4, 0.25, 47.5))[:7] == (now, 10, 5, 8, 4, 0.25, 47.5)


def test_a_state_off_the_wire_finds_what_was_kept_under_the_enum() -> None:
    # the status queue carries a slave's state as plain text, which a monitor then looks up
    styles = {SlaveState.BUILDING: "green", SlaveState.DYING: "red"}
    assert styles["building"] == "green"
    assert styles.get("dying") == "red"
    assert SlaveState("sleeping") is SlaveState.SLEEPING
    assert str(SlaveState.SENDING) == "sending"
