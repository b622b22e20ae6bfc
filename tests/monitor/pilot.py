"""Driving piw-monitor with Textual's pilot against the master fake_master.py plays: each test
runs the app headless (``App.run_test``) in its own event loop. Only the clock is fixed."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine
from typing import Any

from fake_master import NOW, FakeMaster
from rich.console import Console
from textual.pilot import Pilot

from piwheels.monitor.app import MonitorApp
from piwheels.monitor.widgets import EventLog, MasterPanel, SlaveTable
from piwheels.protocols import NO_DATA

SIZE = (140, 36)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one pilot session; a hung app fails the test instead of the whole run."""
    asyncio.run(asyncio.wait_for(test(), timeout=30))


async def until(pilot: Pilot[Any], check: Callable[[], object], what: str) -> None:
    """Let the app run until *check* holds (messages cross threads and sockets)."""
    for _ in range(100):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def next_command(pilot: Pilot[Any], fake: FakeMaster) -> tuple[str, Any]:
    found: list[tuple[str, Any]] = []
    await until(pilot, lambda: found.extend(fake.commands()) or found, "a command")
    assert len(found) == 1, found
    return found[0]


async def connected(pilot: Pilot[Any], fake: FakeMaster, *slaves: list[Any]) -> None:
    """Answer the monitor's HELLO with the farm's state, as the master does."""
    assert await next_command(pilot, fake) == ("HELLO", NO_DATA)
    app = pilot.app
    assert isinstance(app, MonitorApp)
    # The first answer can be published before our subscription reaches the PUB socket (ZeroMQ
    # drops messages for subscribers it has not heard of yet); the monitor asks again until
    # MASTER arrives, and so the test answers again.
    for _ in range(10):
        fake.publish_state(*slaves)
        await pilot.pause(0.1)
        if app.master is not None:
            break
        fake.commands()  # the repeated HELLOs
    await until(pilot, lambda: len(app.slaves) == len(slaves), "the slaves")
    fake.commands()


def monitor(fake: FakeMaster) -> MonitorApp:
    return MonitorApp(fake.status_queue, fake.control_queue, clock=lambda: NOW)


def panel_text(app: MonitorApp) -> str:
    console = Console(width=SIZE[0], file=io.StringIO())
    console.print(app.query_one(MasterPanel).render())
    return console.file.getvalue()  # type: ignore[attr-defined]


def log_lines(app: MonitorApp) -> list[str]:
    return [strip.text for strip in app.query_one(EventLog).lines]


def row(app: MonitorApp, slave_id: int) -> list[str]:
    return [str(cell) for cell in app.query_one(SlaveTable).get_row(str(slave_id))]
