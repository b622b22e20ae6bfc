"""Draw the monitor over a made-up farm, for the README.

Run as ``python tests/monitor/screenshot.py OUT.svg``.

The farm comes from the same fake master the tests use, over real sockets, with a fixed clock so
the picture only changes when the monitor does. Convert the SVG to PNG with a browser, e.g.
``chromium --headless --screenshot=docs/monitor.png --window-size=W,H OUT.svg``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from fake_master import NOW, FakeMaster, slave_record

from piwheels.monitor.app import MonitorApp

SIZE = (132, 32)


async def draw(out: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        fake = FakeMaster(Path(work))
        try:
            app = MonitorApp(fake.status_queue, fake.control_queue, clock=lambda: NOW)
            async with app.run_test(size=SIZE) as pilot:
                early = NOW - timedelta(hours=2)
                slaves = [
                    slave_record(
                        1,
                        "pi4-01",
                        build=("numpy", "2.1.3"),
                        temp=61.0,
                        first_seen=early,
                        builder="rack A",
                    ),
                    slave_record(
                        2,
                        "pi4-02",
                        "cp311",
                        "idle",
                        None,
                        load=0.2,
                        first_seen=early,
                        builder="rack A",
                    ),
                    slave_record(
                        3,
                        "pi5-01",
                        "cp313",
                        build=("cryptography", "44.0.0"),
                        load=3.9,
                        temp=72.0,
                        first_seen=early,
                        builder="rack B",
                    ),
                ]
                for _ in range(50):  # until the answer gets through, as the tests do
                    fake.publish_state(*slaves)
                    await pilot.pause(0.1)
                    if len(app.slaves) == len(slaves):
                        break
                for minutes, slave_id, package, version, abi, ok in [
                    (9, 1, "wrapt", "2.5.2", "cp311", True),
                    (7, 3, "pyyaml", "6.0.3", "cp313", True),
                    (5, 2, "markupsafe", "3.0.2", "cp311", True),
                    (4, 2, "legacy-thing", "0.3", "cp311", False),
                    (2, 2, "six", "1.17.0", "cp311", True),
                ]:
                    when = NOW - timedelta(minutes=minutes)
                    duration = timedelta(seconds=40 + 30 * slave_id)
                    fake.publish("BUILD", [when, slave_id, package, version, abi, ok, duration])
                await pilot.pause(0.3)
                fake.publish(
                    "SLAVE", slave_record(4, "pi3-07", "cp39", "idle", None, temp=44.0, builder="")
                )
                await pilot.pause(0.5)
                await pilot.press("down", "s")  # sleep pi4-02: the log shows the command
                await pilot.pause(0.3)
                app.save_screenshot(filename=out.name, path=str(out.parent))
        finally:
            fake.close()


if __name__ == "__main__":
    asyncio.run(draw(Path(sys.argv[1]).resolve()))
