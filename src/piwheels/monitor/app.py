"""The monitor application: the state it shows, the commands it sends, and ``main``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import zmq
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.reactive import var
from textual.widgets import Footer, Header

from piwheels import defaults, protocols
from piwheels.cli.options import ConfigError, configure_logging, make_parser, parse_args
from piwheels.monitor.messages import (
    BadMessage,
    BuildRecorded,
    CheckRecorded,
    Listening,
    MasterChanged,
    QueueChanged,
    SlaveJoined,
    SlaveLeft,
    SlavesChanged,
    StatsChanged,
)
from piwheels.monitor.screens import ConfirmScreen
from piwheels.monitor.watcher import StatusWatcher
from piwheels.monitor.widgets import EventLog, MasterPanel, SlaveTable
from piwheels.protocols import NO_DATA
from piwheels.records.projects import Statistics
from piwheels.records.status import MasterStatus, SlaveStatus
from piwheels.transport import Socket

log = logging.getLogger(__name__)

# Until the master answers HELLO (it may not be running yet, or our subscription may not have
# reached it when the first HELLO did), ask again this often.
HELLO_RETRY = 1.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class MonitorApp(App[int]):
    """Shows one master's farm; every change arrives as a message from the StatusWatcher."""

    CSS_PATH = "monitor.tcss"
    TITLE = "piwheels monitor"
    BINDINGS = [  # noqa: RUF012 (Textual's class data)
        Binding("p", "pause", "Pause master"),
        Binding("r", "resume", "Resume master"),
        Binding("S", "all_slaves('SLEEP')", "Sleep all"),
        Binding("W", "all_slaves('WAKE')", "Wake all"),
        Binding("K", "all_slaves('KILL')", "Kill all"),
        Binding("q", "quit", "Quit monitor"),
    ]

    master: var[MasterStatus | None] = var(None)
    """The last MASTER; None until the master answers."""
    queue: var[Mapping[str, int]] = var(dict)
    """Versions waiting per ABI (from QUEUE, or STATS until a QUEUE arrives)."""
    stats: var[Statistics | None] = var(None)
    """The last STATS."""
    slaves: var[Mapping[int, SlaveStatus]] = var(dict)
    """The watcher's latest snapshot of the slaves."""
    heard: var[datetime | None] = var(None)
    """When anything last arrived from the master."""
    now: var[datetime] = var(utc_now)
    """The clock as of the last tick; every age on screen is measured against it."""

    def __init__(self, status_queue: str, control_queue: str, *, clock: Clock = utc_now) -> None:
        super().__init__()
        self.status_queue = status_queue
        self.control_queue = control_queue
        self.clock = clock
        """Tests and screenshots fix it; nothing else in the monitor reads the time."""
        self.context: zmq.Context[Any] = zmq.Context()
        self.commands = Socket(zmq.PUSH, reversed(protocols.master_commands), context=self.context)
        # Queue a command only on a live connection: a PAUSE pressed while the master is down
        # must fail now, not take effect whenever a master next appears.
        self.commands.zsock.setsockopt(zmq.IMMEDIATE, 1)
        try:
            self.commands.connect(control_queue)
            self.watcher = StatusWatcher(
                status_queue, self.post_message, since=clock(), context=self.context
            )
        except zmq.ZMQError:
            self.commands.close()
            self.context.term()
            raise
        self.answered = False
        """Whether the master has answered our latest HELLO (with MASTER)."""
        self.queue_seen = False
        """Whether a QUEUE has arrived (after which STATS' older queue is ignored)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield MasterPanel(self.status_queue, id="master").data_bind(
            MonitorApp.master,
            MonitorApp.queue,
            MonitorApp.stats,
            MonitorApp.heard,
            MonitorApp.now,
        )
        yield SlaveTable(id="slaves").data_bind(MonitorApp.slaves, MonitorApp.now)
        yield EventLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.status_queue
        self.now = self.clock()
        self.watcher.start()
        self.set_interval(1.0, self.tick)
        self.set_interval(HELLO_RETRY, self.hello_again)
        self.query_one(SlaveTable).focus()

    def on_unmount(self) -> None:
        self.watcher.stop()
        self.commands.close()
        if not self.watcher.is_alive():
            self.context.term()

    def tick(self) -> None:
        self.now = self.clock()

    @property
    def event_log(self) -> EventLog:
        return self.query_one(EventLog)

    # -- commands ------------------------------------------------------------------------------

    def send(self, action: str, data: Any = NO_DATA, what: str = "") -> bool:
        """Send one command to the master; say in the log whether it went."""
        try:
            self.commands.send(action, data, flags=zmq.NOBLOCK)
        except zmq.Again:
            if action != "HELLO":  # unanswered HELLOs are retried quietly
                self.event_log.entry(
                    self.clock(),
                    f"not sent: {f'{action} {what}'.rstrip()} (no master on {self.control_queue})",
                    style="bold red",
                )
            return False
        if action != "HELLO":
            self.event_log.entry(self.clock(), f"sent {action} {what}".rstrip(), style="bold")
        return True

    def hello(self) -> None:
        self.answered = False
        self.send("HELLO")

    def hello_again(self) -> None:
        if not self.answered:
            self.send("HELLO")

    def action_pause(self) -> None:
        self.send("PAUSE")

    def action_resume(self) -> None:
        self.send("RESUME")

    def action_all_slaves(self, action: str) -> None:
        if action == "KILL":
            self.confirm(
                "Kill every slave? Each stops and exits; builds under way are abandoned.",
                lambda: self.send("KILL", None, "to all slaves"),
            )
        else:
            self.send(action, None, "to all slaves")

    def on_slave_table_command(self, message: SlaveTable.Command) -> None:
        slave = message.slave
        what = f"to slave {slave.slave_id} ({slave.label})"
        if message.action == "KILL":
            doing = f", abandoning {slave.build[0]} {slave.build[1]}" if slave.build else ""
            self.confirm(
                f"Kill slave {slave.slave_id} ({slave.label})? It stops and exits{doing}.",
                lambda: self.send("KILL", slave.slave_id, what),
            )
        else:
            self.send(message.action, slave.slave_id, what)

    def confirm(self, question: str, then: Callable[[], object]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmScreen(question), answered)

    # -- what the watcher tells us --------------------------------------------------------------

    def on_listening(self, _message: Listening) -> None:
        self.hello()

    def on_master_changed(self, message: MasterChanged) -> None:
        self.heard = self.clock()
        status, before = message.status, self.master
        if message.restarted:
            self.event_log.entry(
                self.heard, f"master restarted (version {status.version})", style="bold"
            )
            self.queue_seen = False
            self.hello()  # the new master's state: its slaves, queue and stats
        elif before is not None and before.state != status.state:
            self.event_log.entry(self.heard, f"master {status.state}", style="bold yellow")
        self.answered = True
        self.master = status

    def on_queue_changed(self, message: QueueChanged) -> None:
        self.heard = self.clock()
        self.queue_seen = True
        self.queue = message.queue

    def on_stats_changed(self, message: StatsChanged) -> None:
        self.heard = self.clock()
        self.stats = message.stats
        if not self.queue_seen:
            self.queue = message.stats.queue

    def on_slaves_changed(self, message: SlavesChanged) -> None:
        self.heard = self.clock()
        self.slaves = message.slaves

    def on_slave_joined(self, message: SlaveJoined) -> None:
        self.event_log.joined(message.slave)

    def on_slave_left(self, message: SlaveLeft) -> None:
        self.event_log.left(self.clock(), message.slave)

    def on_build_recorded(self, message: BuildRecorded) -> None:
        self.heard = self.clock()
        self.event_log.build(message.event)

    def on_check_recorded(self, message: CheckRecorded) -> None:
        self.event_log.check(message.event)

    def on_bad_message(self, message: BadMessage) -> None:
        self.event_log.entry(self.clock(), message.error, style="red")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "piw-monitor",
        "Watch a piwheels master and its slaves, and pause, resume, sleep, wake or kill them. "
        "Quitting the monitor leaves the master running.",
    )
    parser.add_argument(
        "--status-queue",
        default=defaults.STATUS_QUEUE,
        metavar="ADDR",
        help="where the master publishes its status (its --status-queue)",
    )
    parser.add_argument(
        "--control-queue",
        default=defaults.CONTROL_QUEUE,
        metavar="ADDR",
        help="where the master takes commands (its --control-queue)",
    )
    return parser


def log_to_file_only(args: argparse.Namespace) -> None:
    """The shared logging set-up, less its console handler, which would scribble on the UI."""
    configure_logging(args)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    if not root.handlers:
        # Without any handler, logging falls back to printing warnings on stderr.
        root.addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv, "monitor")
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        app = MonitorApp(args.status_queue, args.control_queue)
    except zmq.ZMQError as exc:
        parser.error(f"cannot use {args.status_queue!r} and {args.control_queue!r}: {exc}")
    log_to_file_only(args)
    log.info("monitoring %s, commands to %s", args.status_queue, args.control_queue)
    app.run()
    return app.return_code or 0
