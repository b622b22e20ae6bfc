"""The base of every master task: a thread polling its sockets and timers.

A task wires itself up in ``__init__`` with :meth:`Task.register` (a socket and the handler for
what arrives on it) and :meth:`Task.every` (a periodic handler), then :meth:`Task.run` polls until
told to QUIT on its control queue. Tests drive a task by calling :meth:`Task.poll` by hand.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import zmq

from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.message_codec import ProtocolError, decode, encode
from piwheels.protocols import NO_DATA, Protocol
from piwheels.protocols.messages import TaskFailure
from piwheels.transport import Socket

Handler = Callable[[], None]
MAX_ERROR_TEXT = 300


def tell_tasks(control: Socket, action: str, task: str | None = None) -> None:
    """Send *action* (protocols.task_control) to one task by its name, or to every task."""
    control.zsock.send_multipart([_topic(task), encode(control.protocol, action)])


def _topic(task: str | None) -> bytes:
    """The topic frame of control messages: every task's, or one task's (so the master can
    stop tasks one by one, clients of the Oracles before the Oracles)."""
    return b"*" if task is None else task.encode()


def describe_error(exc: BaseException) -> str:
    """*exc* as one short line for the log or an ERROR reply, whatever it carries.

    An exception raised while handling a peer's message may quote the message: its text is cut
    short, and even str() of it may fail (an integer of 5,000 digits in its arguments).
    """
    try:
        text = str(exc)
    except Exception:  # any failure here only loses the text
        text = "(its text cannot be shown)"
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TaskQuit(Exception):
    """Raised inside a task's loop to leave it cleanly (a signal, not an error)."""


@dataclass
class _Timer:
    interval: float
    handler: Handler
    due: float


class Task(threading.Thread):
    """One of the master's tasks, running in its own thread."""

    name = "task"

    def __init__(self, config: MasterConfig, context: zmq.Context[Any] | None = None) -> None:
        super().__init__(name=self.name, daemon=True)
        self.config = config
        self.context = context or zmq.Context.instance()
        self.log = logging.getLogger(
            "piwheels." + re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")
        )
        self.paused = False
        self._sockets: list[Socket] = []
        self._handlers: dict[zmq.Socket[Any] | int, Handler] = {}
        self._muted: set[zmq.Socket[Any] | int] = set()
        self._timers: list[_Timer] = []
        self._poller = zmq.Poller()
        control = self.socket(zmq.SUB, protocols.task_control)
        control.zsock.setsockopt(zmq.SUBSCRIBE, _topic(None))
        control.zsock.setsockopt(zmq.SUBSCRIBE, _topic(self.name))
        control.connect(config.task_control_queue)
        self.register(control, self._handle_control)
        self._control = control
        self._master = self.socket(zmq.PUSH, reversed(protocols.master_control))
        self._master.connect(config.master_control_queue)

    # -- wiring --------------------------------------------------------------------------------

    def socket(self, kind: int, protocol: Protocol, **options: Any) -> Socket:
        """Create a socket this task owns (closed when the task ends)."""
        sock = Socket(kind, protocol, context=self.context, **options)
        self._sockets.append(sock)
        return sock

    def register(self, sock: Socket, handler: Handler) -> None:
        self.register_raw(sock.zsock, handler)

    def register_raw(self, source: zmq.Socket[Any] | int, handler: Handler) -> None:
        """Poll a bare ZeroMQ socket (one that only routes frames) or a file descriptor."""
        self._handlers[source] = handler
        self._muted.discard(source)  # a file descriptor's number can come back for a new file
        self._poller.register(source, zmq.POLLIN)

    def mute(self, source: Socket | zmq.Socket[Any] | int) -> None:
        """Stop polling a registered socket or file descriptor until :meth:`unmute`.

        For a task that cannot take more for now: what arrives waits in the socket's queue (and
        behind it, in its sender). Polling is level-triggered, so a source left registered but
        not read would wake the loop again at once, for ever.
        """
        key = source.zsock if isinstance(source, Socket) else source
        if key in self._handlers and key not in self._muted:
            self._poller.unregister(key)
            self._muted.add(key)

    def unmute(self, source: Socket | zmq.Socket[Any] | int) -> None:
        """Poll a muted socket or file descriptor again."""
        key = source.zsock if isinstance(source, Socket) else source
        if key in self._muted:
            self._muted.discard(key)
            self._poller.register(key, zmq.POLLIN)

    def close_socket(self, sock: Socket) -> None:
        """Stop polling *sock* and close it (a socket that has to be replaced)."""
        if sock.zsock in self._handlers:
            if sock.zsock in self._muted:
                self._muted.discard(sock.zsock)
            else:
                self._poller.unregister(sock.zsock)
            del self._handlers[sock.zsock]
        if sock in self._sockets:
            self._sockets.remove(sock)
        sock.close()

    def every(self, interval: float, handler: Handler) -> None:
        self._timers.append(_Timer(interval, handler, time.monotonic() + interval))

    # -- running -------------------------------------------------------------------------------

    def poll(self, timeout: float = 1.0) -> None:
        """Run due timers, then wait up to *timeout* seconds for messages and handle them."""
        now = time.monotonic()
        for timer in self._timers:
            if timer.due <= now:
                timer.due = now + timer.interval
                timer.handler()
        next_due = min((t.due for t in self._timers), default=now + timeout)
        wait = max(0.0, min(timeout, next_due - time.monotonic()))
        for zsock, _ in self._poller.poll(round(wait * 1000)):
            if zsock not in self._muted:  # muted by a handler called before it in this round
                self._handlers[zsock]()

    def run(self) -> None:
        self.log.info("started")
        try:
            self.once()
            while True:
                self.poll()
        except TaskQuit:
            self.log.info("stopped")
        except Exception as exc:
            # A crashed task must stop the whole master with its traceback, never leave it hung.
            self.log.exception("crashed")
            failure = TaskFailure(self.name, "".join(traceback.format_exception(exc)))
            self._master.send("FAILED", failure)
        finally:
            self.close()

    def once(self) -> None:
        """Work done once when the thread starts (override)."""

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def quit(self) -> None:
        """Ask the whole master to stop (used by tasks that hit a fatal condition)."""
        self._master.send("QUIT")

    def _handle_control(self) -> None:
        try:
            action = self._recv_control()
        except ProtocolError as exc:
            self.log.error("bad control message: %s", exc)
            return
        if action == "QUIT":
            raise TaskQuit
        self.paused = action == "PAUSE"
        self.log.info("paused" if self.paused else "resumed")

    def _recv_control(self) -> str:
        frames = self._control.zsock.recv_multipart()
        if len(frames) != 2:
            raise ProtocolError(f"expected [topic, message], got {len(frames)} frames")
        action, _ = decode(self._control.protocol, frames[1])
        return action


class Outbox:
    """A task's PUSH to another part of the master that must never block it: what cannot be
    queued now is dropped, and *DROPPED* logged at *LEVEL* (with the action)."""

    PROTOCOL: Protocol
    LEVEL = logging.WARNING
    DROPPED = "%s dropped"

    def __init__(self, sock: Socket) -> None:
        self.sock = sock
        sock.zsock.setsockopt(zmq.SNDTIMEO, 0)

    @classmethod
    def connect(cls, task: Task, address: str) -> Self:
        sock = task.socket(zmq.PUSH, cls.PROTOCOL)
        sock.connect(address)
        return cls(sock)

    def send(self, action: str, data: Any = NO_DATA) -> None:
        try:
            self.sock.send(action, data)
        except zmq.Again:
            logging.getLogger(type(self).__module__).log(self.LEVEL, self.DROPPED, action)
