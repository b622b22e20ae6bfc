"""The Task base and the master's reaction to a crashing task."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import zmq

from farm import MasterThread, ScriptedSlave, make_config, wait_for
from piwheels import protocols
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.task import Task, tell_tasks
from piwheels.transport import Socket


class Ticker(Task):
    """A task that counts its timer ticks, and crashes on the third if told to."""

    name = "Ticker"

    def __init__(self, config: MasterConfig, context: zmq.Context, *, crash: bool = False) -> None:
        super().__init__(config, context)
        self.ticks = 0
        self.crash = crash
        self.every(0.05, self.tick)

    def tick(self) -> None:
        if self.paused:
            return
        self.ticks += 1
        if self.crash and self.ticks == 3:
            raise RuntimeError("the ticker fell over")


@pytest.fixture
def config(tmp_path: Path) -> MasterConfig:
    return make_config("", tmp_path, tmp_path, ["cp311"])


def control_sockets(config: MasterConfig, context: zmq.Context) -> tuple[Socket, Socket]:
    control = Socket(zmq.PUB, reversed(protocols.task_control), context=context)
    control.bind(config.task_control_queue)
    inbox = Socket(zmq.PULL, protocols.master_control, context=context)
    inbox.bind(config.master_control_queue)
    return control, inbox


def test_pause_resume_quit(config: MasterConfig) -> None:
    context = zmq.Context()
    control, inbox = control_sockets(config, context)
    task = Ticker(config, context)
    task.start()

    def send(action: str) -> None:
        tell_tasks(control, action)

    try:
        wait_for(lambda: task.ticks > 2, what="ticks")
        send("PAUSE")
        wait_for(lambda: task.paused, what="the pause")
        paused_at = task.ticks
        threading.Event().wait(0.3)
        assert task.ticks == paused_at
        send("RESUME")
        wait_for(lambda: task.ticks > paused_at, what="the resumption")
        send("QUIT")
        task.join(5)
        assert not task.is_alive()
    finally:
        control.close()
        inbox.close()
        context.term()


def test_crashed_task_reports_its_traceback(config: MasterConfig) -> None:
    context = zmq.Context()
    control, inbox = control_sockets(config, context)
    task = Ticker(config, context, crash=True)
    task.start()
    try:
        assert inbox.poll(5000)
        action, (name, trace) = inbox.recv()
        assert (action, name) == ("FAILED", "Ticker")
        assert "RuntimeError: the ticker fell over" in trace
        task.join(5)
        assert not task.is_alive()
    finally:
        control.close()
        inbox.close()
        context.term()


class Listener(Task):
    """A task that takes what arrives on a PULL socket, one message a poll."""

    name = "Listener"

    def __init__(self, config: MasterConfig, context: zmq.Context, address: str) -> None:
        super().__init__(config, context)
        self.inbox = self.socket(zmq.PULL, protocols.web)
        self.inbox.bind(address)
        self.register(self.inbox, self.take)
        self.taken: list[str] = []

    def take(self) -> None:
        self.taken.append(self.inbox.recv()[1])


def test_a_muted_socket_is_not_polled_until_unmuted(config: MasterConfig) -> None:
    context = zmq.Context()
    control, inbox = control_sockets(config, context)
    task = Listener(config, context, "inproc://listener")  # driven by hand, not started
    sender = Socket(zmq.PUSH, reversed(protocols.web), context=context)
    sender.connect("inproc://listener")
    try:
        task.mute(task.inbox)
        task.mute(task.inbox)  # twice is once
        sender.send("PROJECT", "foo")
        sender.send("PROJECT", "bar")
        started = time.monotonic()
        task.poll(0.3)
        # level-triggered polling would have handed back the waiting message at once
        assert time.monotonic() - started >= 0.25
        assert task.taken == []
        task.unmute(task.inbox)
        task.unmute(task.inbox)
        task.poll(1.0)
        task.poll(1.0)
        assert task.taken == ["foo", "bar"]
        task.mute(task.inbox)
        task.close_socket(task.inbox)  # a muted socket can still be closed
    finally:
        sender.close()
        task.close()
        control.close()
        inbox.close()
        context.term()


class CrashingMaster(PiwMaster):
    """The real master with one extra task that crashes: the master must stop, not hang."""

    def _create_tasks(self) -> list[Task]:
        return [*super()._create_tasks(), Ticker(self.config, self.context, crash=True)]


def test_a_crashing_task_stops_the_whole_master(
    master_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    config = make_config(master_dsn, tmp_path, tmp_path, ["cp311"])
    running = MasterThread(config)
    running.master = CrashingMaster(config, follow_pypi=False)
    running.start()
    running.thread.join(30)
    assert not running.thread.is_alive()
    assert running.exit_status == 1
    assert "Ticker crashed; stopping the master" in caplog.text
    assert "RuntimeError: the ticker fell over" in caplog.text


def test_operators_pause_resume_and_stop_the_master_on_its_control_queue(
    farm_config: MasterConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="piwheels")
    running = MasterThread(farm_config).start()
    context = zmq.Context()
    tool = Socket(zmq.PUSH, reversed(protocols.master_commands), context=context)
    tool.connect(farm_config.control_queue)
    slave = ScriptedSlave(farm_config, abi="cp39")
    try:
        slave.hello()
        wait_for(lambda: "recorded piwtest-pure" in caplog.text, what="the catalogue")
        tool.send("PAUSE")
        wait_for(lambda: "piwheels.slave_driver:task.py" in caplog.text and "paused" in caplog.text)
        time.sleep(2 * farm_config.queue_interval)
        assert slave.idle()[0] == "SLEEP"  # a paused master gives out no work
        tool.send("RESUME")
        assert slave.wait_for_build()[0].startswith("piwtest-")
        tool.zsock.send(b"\xff not a command")
        tool.send("QUIT")
        running.thread.join(30)
        assert running.exit_status == 0
        assert "refused a command" in caplog.text
    finally:
        slave.close()
        tool.close()
        context.term()
        running.stop()


def test_no_task_shadows_a_thread_attribute() -> None:
    # A Task is a threading.Thread: a method called, say, _delete or start silently replaces
    # the Thread's own and breaks the thread in ways no error points at (seen with both).
    # (importing piwheels.master, above, imported every task module)
    allowed = {"name", "run", "__init__"}
    thread_names = set(dir(threading.Thread))
    tasks = Task.__subclasses__()
    assert len(tasks) >= 10
    for task in [Task, *tasks]:
        clashes = {
            attr
            for attr in vars(task)
            if attr in thread_names and attr not in allowed and not attr.startswith("__")
        }
        assert not clashes, f"{task.__name__} shadows threading.Thread's {sorted(clashes)}"
