"""The log at the bottom: builds, slaves coming and going, and what the operator sent."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import RichLog

from piwheels.monitor.model import human_duration
from piwheels.records.status import BuildEvent, CheckEvent, SlaveStatus

# Enough for an operator's glance back; the master's own log keeps the rest.
MAX_LINES = 1000


class EventLog(RichLog):
    """A bounded log, newest at the bottom, each line stamped with local time."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, wrap=False, markup=False)
        # The slave table keeps the focus, and with it the slave keys; the log scrolls by mouse.
        self.can_focus = False

    def entry(self, when: datetime, text: Text | str, style: str = "") -> None:
        line = Text(when.astimezone().strftime("%H:%M:%S "), style="dim")
        line.append(text if isinstance(text, Text) else Text(text, style=style))
        self.write(line)

    def build(self, event: BuildEvent) -> None:
        text = (
            Text("built ", style="green") if event.succeeded else Text("FAILED ", style="bold red")
        )
        text.append(f"{event.package} {event.version}", style="bold")
        text.append(
            f" for {event.abi_tag} on slave {event.slave_id} in {human_duration(event.duration)}"
        )
        self.entry(event.when, text)

    def check(self, event: CheckEvent) -> None:
        """A cross-check's verdict: a disagreement stands out, as a failed build does."""
        disputed = event.verdict == "disagreed"
        text = Text("DISAGREED " if disputed else "checked ", style="bold red" if disputed else "")
        text.append(f"{event.package} {event.version}", style="bold")
        text.append(
            f" for {event.abi_tag} (build {event.build_id}) on slave {event.slave_id}: "
            f"{event.verdict}"
        )
        self.entry(event.when, text)

    def joined(self, slave: SlaveStatus) -> None:
        self.entry(
            slave.first_seen,
            f"slave {slave.slave_id} ({slave.label}) joined: {slave.abi_tag} {slave.platform_tag}",
            style="cyan",
        )

    def left(self, when: datetime, slave: SlaveStatus) -> None:
        doing = f", abandoning {slave.build[0]} {slave.build[1]}" if slave.build else ""
        self.entry(when, f"slave {slave.slave_id} ({slave.label}) left{doing}", style="magenta")
