"""The panel at the top: the master's state, its build queue and Big Brother's statistics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from piwheels.monitor.model import human_duration, human_size
from piwheels.records.projects import Statistics
from piwheels.records.status import MasterStatus

# After this long without a word the master may be gone: say so, rather than show old figures
# as if they were live. The master publishes at least its statistics every minute or so.
SILENCE_WARNING = 150.0


class MasterPanel(Widget):
    """Renders whatever the app binds to it; it holds no state of its own."""

    master: reactive[MasterStatus | None] = reactive(None)
    """The last MASTER, or None before the master has answered."""
    queue: reactive[Mapping[str, int]] = reactive(dict)
    """Versions waiting per ABI."""
    stats: reactive[Statistics | None] = reactive(None)
    """The last STATS."""
    heard: reactive[datetime | None] = reactive(None)
    """When anything last arrived from the master."""
    now: reactive[datetime] = reactive(lambda: datetime.now(UTC))
    """The app's clock, ticking once a second, so ages and uptime move."""

    def __init__(self, address: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.address = address
        """The status queue, named while the master is silent."""

    def render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.add_row("Master", self._master_line())
        grid.add_row("Queue", self._queue_line())
        grid.add_row("Builds", self._builds_line())
        grid.add_row("Output", self._output_line())
        grid.add_row("Downloads", self._downloads_line())
        return grid

    def _master_line(self) -> Text:
        if self.master is None:
            return Text(f"waiting for the master on {self.address}", style="bold red")
        state = self.master.state
        line = Text(state.upper(), style="bold green" if state == "running" else "bold yellow")
        line.append(
            f"  version {self.master.version}, up {human_duration(self.now - self.master.started)}"
        )
        if self.heard is not None:
            silence = self.now - self.heard
            style = "bold red" if silence.total_seconds() > SILENCE_WARNING else "dim"
            line.append(f"  (last heard {human_duration(silence)} ago)", style=style)
        return line

    def _queue_line(self) -> Text:
        if not self.queue:
            return Text("-", style="dim")
        line = Text()
        for abi, count in self.queue.items():
            line.append(f"{abi} ", style="bold")
            line.append(f"{count:,}   ")
        line.append(f"(total {sum(self.queue.values()):,})", style="dim")
        return line

    def _builds_line(self) -> Text:
        if self.stats is None:
            return Text("-", style="dim")
        stats = self.stats
        line = Text(f"{stats.builds_last_hour:,} in the last hour")
        if stats.failures_last_hour:
            line.append(f" ({stats.failures_last_hour:,} failed)", style="yellow")
        if stats.given_back_last_hour:
            line.append(f" ({stats.given_back_last_hour:,} to be tried again)", style="dim")
        rate = stats.builds_succeeded / stats.builds if stats.builds else 0.0
        line.append(f"   {stats.builds:,} in all, {rate:.0%} succeeded", style="dim")
        for abi, causes in stats.failures_by_cause.items():
            day = ", ".join(f"{cause} {count:,}" for cause, count in list(causes.items())[:4])
            line.append(f"\n{abi} failures today: ", style="bold")
            line.append(day, style="yellow")
        return line

    def _output_line(self) -> Text:
        if self.stats is None:
            return Text("-", style="dim")
        stats = self.stats
        share = stats.disk_free / stats.disk_total if stats.disk_total else 0.0
        line = Text(
            f"{human_size(stats.disk_free)} free of {human_size(stats.disk_total)}",
            # Below a tenth free the master will soon send slaves to sleep: make it stand out.
            style="bold red" if share < 0.1 else "",
        )
        line.append(
            f"   {stats.packages:,} packages, {stats.versions:,} versions, "
            f"{stats.files:,} files ({human_size(stats.bytes)})",
            style="dim",
        )
        return line

    def _downloads_line(self) -> Text:
        stats = self.stats
        if stats is None or stats.downloads is None:  # none yet, or a master that cannot count
            return Text("-", style="dim")
        downloads = stats.downloads
        line = Text(f"{downloads.last_30_days:,} in the last 30 days")
        line.append(f"   {downloads.all_time:,} in all", style="dim")
        if stats.popular:
            top = ", ".join(f"{p.project} {p.last_30_days:,}" for p in stats.popular[:3])
            line.append(f"   most: {top}", style="dim")
        return line
