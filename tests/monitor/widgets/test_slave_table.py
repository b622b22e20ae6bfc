"""The table of slaves: its rows, and the one the operator chose kept chosen."""

from __future__ import annotations

from typing import Any

from fake_master import NOW, FakeMaster, slave_record
from pilot import SIZE, connected, monitor, next_command, run, until

from piwheels import protocols
from piwheels.monitor.widgets.slave_table import COLUMNS, slave_cells


def test_a_new_slave_does_not_move_the_cursor_off_the_chosen_one(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(5, "a"), slave_record(9, "b"))
            await pilot.press("down")  # on slave 9
            fake.publish("SLAVE", slave_record(2, "new"))  # sorts above both
            await until(pilot, lambda: len(app.slaves) == 3, "the new slave")
            await pilot.press("s")
            assert await next_command(pilot, fake) == ("SLEEP", 9)

    run(test)


def cells(**fields: Any) -> dict[str, str]:
    status = protocols.status.send["SLAVE"].check(slave_record(3, **fields), "SLAVE")
    return {
        key: str(cell) for (key, _), cell in zip(COLUMNS, slave_cells(status, NOW), strict=True)
    }


def test_a_row_says_what_the_slave_does_and_how_it_fares() -> None:
    row = cells()
    assert (row["id"], row["label"], row["abi"], row["state"]) == (
        "3",
        "pi4-a",
        "cp311",
        "building",
    )
    assert (row["build"], row["time"], row["seen"]) == ("numpy 2.1.0", "3m20s", "2s ago")
    assert (row["load"], row["mem"], row["disk"], row["temp"]) == ("1.50", "5.0G", "20.0G", "52°C")


def test_swap_is_shown_where_the_slave_reports_it() -> None:
    assert cells(swap=(2 << 30, 1 << 30))["swap"] == "1.0G"
    assert cells()["swap"] == "-"  # a slave that does not say
    assert cells(swap=(0, 0))["swap"] == "-"  # or has none


def test_a_slave_told_to_sleep_says_so_until_it_sleeps() -> None:
    assert cells(state="building", sleep_requested=True)["state"] == "building (to sleep)"
    assert cells(state="sleeping", sleep_requested=True)["state"] == "sleeping"


def test_what_a_slave_does_not_say_is_a_dash() -> None:
    row = cells(state="idle", build=None, temp=0.0)
    assert (row["build"], row["time"], row["temp"]) == ("-", "-", "-")
