"""The table of slaves: one row each, kept in step with the app's snapshot without a rebuild."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from piwheels.monitor.model import human_duration, human_size
from piwheels.records.slaves import SlaveState
from piwheels.records.status import SlaveStatus

Cell = str | Text | int

COLUMNS = (
    ("id", "ID"),
    ("label", "Label"),
    ("builder", "Builder"),
    ("abi", "ABI"),
    ("state", "State"),
    ("build", "Build"),
    ("time", "For"),
    ("seen", "Seen"),
    ("load", "Load"),
    ("mem", "Mem free"),
    ("swap", "Swap free"),
    ("disk", "Disk free"),
    ("temp", "Temp"),
)

STATE_STYLES: dict[str, str] = {
    SlaveState.HELLO: "cyan",
    SlaveState.IDLE: "dim",
    SlaveState.SLEEPING: "blue",
    SlaveState.BUILDING: "bold green",
    SlaveState.SENDING: "green",
    SlaveState.DYING: "bold red",
}


def slave_cells(slave: SlaveStatus, now: datetime) -> tuple[Cell, ...]:
    """One row, in COLUMNS order."""
    state = Text(slave.state, style=STATE_STYLES.get(slave.state, ""))
    if slave.sleep_requested and slave.state != SlaveState.SLEEPING:
        # Told to sleep, but it only hears so at its next IDLE (after its build).
        state.append(" (to sleep)", style="blue")
    if slave.build is None or slave.build_started is None:
        build, running = "-", "-"
    else:
        build = f"{slave.build[0]} {slave.build[1]}"
        running = human_duration(now - slave.build_started)
    stats = slave.stats
    if stats is None:
        load = mem = swap = disk = temp = "-"
    else:
        load = f"{stats.load_avg:.2f}"
        mem = human_size(stats.mem_free)
        # "-" where the slave does not say, or has no swap at all
        swap = human_size(stats.swap_free) if stats.swap_total else "-"
        disk = human_size(stats.disk_free)
        # A slave with no sensor to read reports 0.0.
        known = math.isfinite(stats.cpu_temp) and stats.cpu_temp != 0.0
        temp = f"{stats.cpu_temp:.0f}°C" if known else "-"
    return (
        slave.slave_id,
        slave.label,
        # the key it was trusted with; none: the original fleet, on a plain queue
        slave.builder or Text("no key", style="dim"),
        slave.abi_tag,
        state,
        build,
        running,
        f"{human_duration(now - slave.last_seen)} ago",
        load,
        mem,
        swap,
        disk,
        temp,
    )


class SlaveTable(DataTable[Cell]):
    """Shows the bound ``slaves``; its keys act on the slave under the cursor."""

    BINDINGS = [  # noqa: RUF012 (Textual's class data)
        Binding("s", "command('SLEEP')", "Sleep slave"),
        Binding("w", "command('WAKE')", "Wake slave"),
        Binding("k", "command('KILL')", "Kill slave"),
    ]

    slaves: reactive[Mapping[int, SlaveStatus]] = reactive(dict)
    """Every slave the master knows, by id."""
    now: reactive[datetime] = reactive(lambda: datetime.now(UTC))
    """The app's clock: build times and ages are relative to it."""

    @dataclass
    class Command(Message):
        """A key asked for SLEEP, WAKE or KILL of the slave under the cursor."""

        action: str
        slave: SlaveStatus

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_shown: dict[int, tuple[Cell, ...]] = {}
        """What each row shows now, so an update touches only the cells that changed."""

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def selected(self) -> SlaveStatus | None:
        """The slave under the cursor, if there is one."""
        if not self.rows_shown or not self.is_valid_row_index(self.cursor_row):
            return None
        row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return self.slaves.get(int(row_key.value or 0))

    def action_command(self, action: str) -> None:
        slave = self.selected()
        if slave is None:
            self.notify("No slave selected", severity="warning")
        else:
            self.post_message(self.Command(action, slave))

    def watch_slaves(self) -> None:
        self._show()

    def watch_now(self) -> None:
        self._show()

    def _show(self) -> None:
        if not self.columns:
            return  # not mounted yet; on_mount's columns come first
        chosen = self.selected()
        added = False
        for slave_id in self.rows_shown.keys() - self.slaves.keys():
            self.remove_row(str(slave_id))
            del self.rows_shown[slave_id]
        for slave_id, slave in self.slaves.items():
            cells = slave_cells(slave, self.now)
            old = self.rows_shown.get(slave_id)
            if old is None:
                self.add_row(*cells, key=str(slave_id))
                added = True
            else:
                for (column, _), before, after in zip(COLUMNS, old, cells, strict=True):
                    if before != after:
                        self.update_cell(str(slave_id), column, after)
            self.rows_shown[slave_id] = cells
        if added:
            # New rows land at the bottom; keep the table in id order and the cursor on the
            # slave it was on, so a key never acts on a slave the operator did not choose.
            self.sort("id")
            if chosen is not None and chosen.slave_id in self.rows_shown:
                self.move_cursor(row=self.get_row_index(str(chosen.slave_id)), animate=False)
