"""piw-monitor driven by Textual's pilot against a master played over real ZeroMQ sockets.

Each test runs the app headless (``App.run_test``) in its own event loop (see pilot.py); the
test plays the master's PUB status queue and PULL control queue (see fake_master.py). Only the
clock is fixed. The question before a kill, the log and the table have tests of their own
under screens/ and widgets/.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from fake_master import NOW, FakeMaster, slave_record, statistics
from pilot import SIZE, connected, log_lines, monitor, next_command, panel_text, row, run, until
from textual.message import Message

from piwheels import defaults
from piwheels.cli import master as master_cli
from piwheels.monitor import app as monitor_app
from piwheels.monitor.app import MonitorApp
from piwheels.monitor.messages import SlavesChanged
from piwheels.monitor.widgets import SlaveTable
from piwheels.protocols import NO_DATA


def test_hello_at_start_then_master_queue_and_stats(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            assert "waiting for the master on ipc://" in panel_text(app)
            await connected(pilot, fake)
            text = panel_text(app)
            assert "RUNNING  version 0.1.0, up 2h14m05s" in text
            assert "cp39 3   cp311 17   (total 20)" in text
            assert "12 in the last hour (2 failed)" in text
            assert "40.0G free of 100.0G" in text
            fake.publish("STATS", statistics(builds_last_hour=30, disk_free=5 << 30))
            fake.publish("QUEUE", {"cp39": 0, "cp311": 16})
            await until(pilot, lambda: "30 in the last hour" in panel_text(app), "new stats")
            await until(pilot, lambda: "cp311 16" in panel_text(app), "the new queue")
            assert "5.0G free of 100.0G" in panel_text(app)
            # a master from before download counts (#20) sends the first 15 fields alone
            fake.publish("STATS", list(statistics(builds_last_hour=31))[:15])
            await until(pilot, lambda: "31 in the last hour" in panel_text(app), "older stats")
            assert "Downloads -" in " ".join(panel_text(app).split())

    run(test)


def test_hello_is_repeated_until_the_master_answers(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            assert await next_command(pilot, fake) == ("HELLO", NO_DATA)
            # A monitor started before the master (or whose first HELLO's answer was lost)
            # fills in once the master answers.
            assert await next_command(pilot, fake) == ("HELLO", NO_DATA)
            await connected(pilot, fake, slave_record(1))
            await pilot.pause(1.5)
            assert fake.commands() == [], "HELLO repeated after the master answered"

    run(test)


def test_a_slave_that_connects_is_shown_and_gone_removes_it(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake)
            table = app.query_one(SlaveTable)
            assert table.row_count == 0
            fake.publish("SLAVE", slave_record(7, "pi4-a", temp=52.4, builder="rack 3"))
            await until(pilot, lambda: table.row_count == 1, "the slave's row")
            assert row(app, 7) == [
                "7",
                "pi4-a",
                "rack 3",  # the label its key was trusted under
                "cp311",
                "building",
                "numpy 2.1.0",
                "3m20s",
                "2s ago",
                "1.50",
                "5.0G",
                "-",  # no swap reported
                "20.0G",
                "52°C",
            ]
            assert any("slave 7 (pi4-a) joined: cp311 linux_aarch64" in x for x in log_lines(app))
            # The same slave again updates the row in place (from a master that says nothing
            # of who the builder is, as an older one would).
            fake.publish("SLAVE", slave_record(7, "pi4-a", state="idle", build=None, temp=0.0))
            await until(pilot, lambda: row(app, 7)[4] == "idle", "the update")
            assert row(app, 7)[2] == "no key"
            assert row(app, 7)[5:8] == ["-", "-", "2s ago"]
            assert row(app, 7)[12] == "-"  # no temperature sensor
            fake.publish("GONE", 7)
            await until(pilot, lambda: table.row_count == 0, "the row to go")
            assert any("slave 7 (pi4-a) left" in line for line in log_lines(app))

    run(test)


def test_slaves_there_before_the_monitor_are_filled_in_not_announced(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            early = NOW - timedelta(hours=1)
            await connected(
                pilot,
                fake,
                slave_record(1, "old-1", first_seen=early),
                slave_record(2, "old-2", first_seen=early),
            )
            assert app.query_one(SlaveTable).row_count == 2
            assert not any("joined" in line for line in log_lines(app))

    run(test)


def test_pause_and_resume_keys(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake)
            await pilot.press("p")
            assert await next_command(pilot, fake) == ("PAUSE", NO_DATA)
            fake.state = "paused"
            fake.publish("MASTER", [fake.state, fake.started, "0.1.0"])
            await until(pilot, lambda: "PAUSED" in panel_text(app), "the paused state")
            assert log_lines(app)[-1].endswith("master paused")
            await pilot.press("r")
            assert await next_command(pilot, fake) == ("RESUME", NO_DATA)

    run(test)


def test_sleep_and_wake_the_selected_slave_or_all(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(4, "a"), slave_record(9, "b"))
            await pilot.press("s")
            assert await next_command(pilot, fake) == ("SLEEP", 4)
            await pilot.press("down", "s")
            assert await next_command(pilot, fake) == ("SLEEP", 9)
            await pilot.press("w")
            assert await next_command(pilot, fake) == ("WAKE", 9)
            await pilot.press("S")
            assert await next_command(pilot, fake) == ("SLEEP", None)
            await pilot.press("W")
            assert await next_command(pilot, fake) == ("WAKE", None)
            assert log_lines(app)[-1].endswith("sent WAKE to all slaves")

    run(test)


def test_quitting_sends_nothing_to_the_master(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(1))
            await pilot.press("q")
            await pilot.pause(0.3)
            assert not app.is_running
        assert not app.watcher.is_alive()

    run(test)
    fake.commands()
    assert {action for action, _ in fake.received} == {"HELLO"}


def test_a_burst_of_slave_updates_is_coalesced(fake: FakeMaster) -> None:
    async def test() -> None:
        snapshots: list[Message] = []
        app = monitor(fake)

        def hook(message: Message) -> None:
            if isinstance(message, SlavesChanged):
                snapshots.append(message)

        async with app.run_test(size=SIZE, message_hook=hook) as pilot:
            await connected(pilot, fake)
            snapshots.clear()
            for n in range(600):
                fake.publish("SLAVE", slave_record(n % 20, f"s{n % 20}", load=n / 100))
            await until(
                pilot, lambda: len(app.slaves) == 20 and row(app, 19)[8] == "5.99", "the last"
            )
            assert len(snapshots) < 60, f"{len(snapshots)} table updates for 600 messages"

    run(test)


def test_a_restarted_master_is_asked_for_its_state(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(1), slave_record(2))
            fake.started = NOW - timedelta(seconds=5)
            fake.publish("MASTER", ["running", fake.started, "0.1.1"])
            # The old master's slaves are gone with it; the new one is asked what it has.
            await until(pilot, lambda: not app.slaves, "the old slaves to go")
            assert await next_command(pilot, fake) == ("HELLO", NO_DATA)
            assert any("master restarted (version 0.1.1)" in line for line in log_lines(app))

    run(test)


def test_garbage_on_the_status_queue_is_reported_and_survived(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake)
            fake.pub.zsock.send(b"\xff\x00not cbor")
            fake.pub.zsock.send(b"\x82\x65SLAVE\x01")  # ["SLAVE", 1]: the wrong shape
            await until(pilot, lambda: len(log_lines(app)) >= 1, "the complaint")
            assert any("status (peer)" in line for line in log_lines(app))
            fake.publish("SLAVE", slave_record(8))
            await until(pilot, lambda: 8 in app.slaves, "a good message after the bad")

    run(test)


def test_commands_without_a_master_say_so(tmp_path: Path) -> None:
    async def test() -> None:
        app = MonitorApp(f"ipc://{tmp_path}/s", f"ipc://{tmp_path}/c", clock=lambda: NOW)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: log_lines(app), "the log line")
            assert "not sent: PAUSE (no master on ipc://" in log_lines(app)[-1]

    run(test)


def test_defaults_match_the_master_and_logging_stays_off_the_screen(tmp_path: Path) -> None:
    ours = monitor_app.build_parser().parse_args([])
    theirs = master_cli.build_parser().parse_args([])
    assert ours.status_queue == theirs.status_queue
    assert ours.control_queue == theirs.control_queue
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    # configure_logging(force=True) closes the handlers it replaces: keep pytest's out of reach.
    root.handlers.clear()
    try:
        monitor_app.log_to_file_only(
            monitor_app.build_parser().parse_args(["--log-file", str(tmp_path / "m.log")])
        )
        kinds = [type(handler) for handler in root.handlers]
        assert kinds == [logging.FileHandler]
        monitor_app.log_to_file_only(monitor_app.build_parser().parse_args([]))
        assert [type(handler) for handler in root.handlers] == [logging.NullHandler]
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved


def test_a_bad_address_is_an_option_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        monitor_app.main(["--control-queue", "nonsense"])
    assert exit_.value.code == 2
    assert f"cannot use '{defaults.STATUS_QUEUE}' and 'nonsense'" in capsys.readouterr().err
