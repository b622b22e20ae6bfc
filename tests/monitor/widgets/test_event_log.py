"""The log at the bottom: builds, each once, however often the master replays them."""

from __future__ import annotations

from datetime import timedelta

from fake_master import NOW, FakeMaster, slave_record
from pilot import SIZE, connected, log_lines, monitor, run, until


def test_build_lands_in_the_log(fake: FakeMaster) -> None:
    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(3))
            duration = timedelta(minutes=4, seconds=2)
            fake.publish("BUILD", [NOW, 3, "numpy", "2.1.0", "cp311", True, duration])
            fake.publish("BUILD", [NOW, 3, "broken", "0.1", "cp311", False, timedelta(seconds=9)])
            await until(pilot, lambda: len(log_lines(app)) >= 2, "the log lines")
            lines = log_lines(app)
            assert lines[-2].endswith("built numpy 2.1.0 for cp311 on slave 3 in 4m02s")
            assert lines[-1].endswith("FAILED broken 0.1 for cp311 on slave 3 in 9s")
            # The master replays its recent builds to every HELLO: once in the log is enough.
            fake.publish("BUILD", [NOW, 3, "numpy", "2.1.0", "cp311", True, duration])
            fake.publish("BUILD", [NOW, 4, "six", "1.17.0", "cp311", True, duration])
            await until(pilot, lambda: "six" in log_lines(app)[-1], "the next build")
            assert sum("numpy" in line for line in log_lines(app)) == 1

    run(test)


def test_a_cross_checks_verdict_lands_in_the_log(fake: FakeMaster) -> None:
    """Another builder's verdict on a published build; a disagreement stands out."""

    async def test() -> None:
        app = monitor(fake)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot, fake, slave_record(3))
            fake.publish("CHECK", [NOW, 12, "numpy", "2.1.0", "cp311", 4, "agreed"])
            fake.publish("CHECK", [NOW, 13, "evil", "0.1", "cp311", 4, "disagreed"])
            await until(pilot, lambda: len(log_lines(app)) >= 2, "the log lines")
            lines = log_lines(app)
            assert lines[-2].endswith("checked numpy 2.1.0 for cp311 (build 12) on slave 4: agreed")
            assert lines[-1].endswith(
                "DISAGREED evil 0.1 for cp311 (build 13) on slave 4: disagreed"
            )

    run(test)
