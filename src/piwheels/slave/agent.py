"""The build slave's side of the Slave Driver and File Juggler protocols.

:class:`PiwSlave` introduces itself to the master (HELLO), asks for work (IDLE), runs each build
it is given in the background while pinging the master (BUSY), reports it (BUILT) and hands its
wheels to the File Juggler (SEND ... SENT). Whenever the master is silent for longer than the
master timeout, or says something that makes no sense at that point, the slave drops whatever it
was doing and starts again from HELLO on a fresh socket: a master can be restarted, or replaced,
under running slaves.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import zmq

from piwheels.builder_keys import ClientKeys
from piwheels.codec import Text
from piwheels.message_codec import ProtocolError
from piwheels.protocols import NO_DATA
from piwheels.protocols.wire import SLAVE_HELLO
from piwheels.records.builds import BuildResult
from piwheels.records.slaves import SlaveHello, SlaveStats
from piwheels.slave import hostinfo
from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.interpreter import Interpreter
from piwheels.slave.limits import NO_LIMITS, Limits
from piwheels.slave.master_link import (
    MasterConfusedError,
    MasterGoneError,
    MasterLink,
    MasterRefusedError,
    MasterSaidDieError,
    MasterTimeoutError,
)
from piwheels.slave.sandbox import Sandbox, make_sandbox
from piwheels.slave.toolchains import Toolchains, find_toolchains
from piwheels.transport import POLL_SLICE

__all__ = ["PiwSlave", "SlaveConfig"]

log = logging.getLogger(__name__)

# After losing the master, how long to wait before saying HELLO to the next one: a connection
# that keeps dropping must not turn into a flood of HELLOs.
RECONNECT_PAUSE = timedelta(seconds=1)
# After the master turned our key away, how long before trying again: until its operator
# trusts the key, every try is refused (and costs the master a handshake).
REFUSED_PAUSE = timedelta(seconds=10)
# BUILT carries the whole log, but the protocol bounds it (in characters) and the master bounds
# the message (in bytes); the builder keeps more than either allows. A budget in UTF-8 bytes
# satisfies both, whatever the log's script.
_OUTPUT_LIMIT = min(Text.max_len or 0, 16 * 1024 * 1024)

BuilderFactory = Callable[[str], Builder]


@dataclass(frozen=True)
class SlaveConfig:
    """How one slave reaches its master and paces its conversation."""

    slave_queue: str  # the Slave Driver, e.g. "tcp://master:5555"
    file_queue: str  # the File Juggler, e.g. "tcp://master:5556"
    label: str
    work_root: Path  # builds happen in directories below this
    build_timeout: timedelta = timedelta(hours=3)
    master_timeout: timedelta = timedelta(minutes=5)
    busy_interval: timedelta = timedelta(seconds=10)
    sleep_interval: timedelta = timedelta(seconds=10)
    # How long a stopping slave waits to get its BYE out (and, if it was waiting for an answer
    # when stopped, for that answer, since a REQ socket cannot send before it arrives).
    bye_timeout: timedelta = timedelta(seconds=1)
    # directories bound read-only into builds besides the toolchains found on PATH
    toolchains: tuple[Path, ...] = ()
    limits: Limits = NO_LIMITS  # of each build (slave/limits.py)
    # this slave's key pair and its master's public key; None: plain queues (insecure)
    keys: ClientKeys | None = None


def spread(interval: timedelta) -> timedelta:
    """At least *interval* (the operator's setting), and up to half as long again: slaves the
    master told to SLEEP in the same moment (a restart, a master catching up) would otherwise
    all come back in the same moment."""
    return interval * random.uniform(1.0, 1.5)  # noqa: S311 (spread, not a secret)


class _StopRequestedError(Exception):
    """:meth:`PiwSlave.stop` was called (a signal, usually)."""


class PiwSlave:
    """One build slave: builds for one interpreter, talks to one master.

    :meth:`run` blocks until the master says DIE or :meth:`stop` is called (from another thread or
    a signal handler), then returns the exit status. *clock* (monotonic seconds) and *now* (the
    wall clock reported in stats) are parameters so that tests can control time.
    """

    def __init__(
        self,
        config: SlaveConfig,
        interpreter: Interpreter,
        *,
        sandbox: Sandbox | None = None,
        builder_factory: BuilderFactory | None = None,
        context: zmq.Context[Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.interpreter = interpreter
        self.slave_id: int | None = None
        self.pypi_url: str | None = None
        self._sandbox = sandbox
        self._toolchains: Toolchains | None = None
        self._builder_factory = builder_factory or self._default_builder
        self._own_context = context is None
        self._context: zmq.Context[Any] = context or zmq.Context()
        self._clock = clock
        self._now = now
        # A plain flag, not an Event: stop() runs in signal handlers, where taking the lock an
        # Event.wait() of the interrupted thread may hold would deadlock.
        self._stopping = False
        self._link: MasterLink | None = None  # for one conversation, from HELLO
        self._refusals_logged: set[str] = set()
        self._build: Build | None = None
        config.work_root.mkdir(parents=True, exist_ok=True)
        os_name, os_version = hostinfo.os_info()
        board_revision, board_serial = hostinfo.board_info()
        self.hello = SlaveHello(
            build_timeout=config.build_timeout,
            master_timeout=config.master_timeout,
            py_version_tag=interpreter.py_version_tag,
            abi_tag=interpreter.abi_tag,
            platform_tag=interpreter.platform_tag,
            label=config.label,
            os_name=os_name,
            os_version=os_version,
            board_revision=board_revision,
            board_serial=board_serial,
        )
        # Fail here, at start-up, rather than on the wire (a label too long, say).
        SLAVE_HELLO.check(self.hello, "HELLO")

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to kill any build, say BYE and return.

        Safe from any thread and from a signal handler; :meth:`run` notices within 0.1 s.
        """
        self._stopping = True

    def stats(self) -> SlaveStats:
        """What IDLE and BUSY report about this machine right now."""
        return hostinfo.slave_stats(self.config.work_root, self._now())

    def run(self) -> int:
        """Talk to the master until told to stop; returns the process exit status (0)."""
        try:
            while True:
                try:
                    self._session()
                except MasterTimeoutError as exc:
                    log.warning("%s; starting again from HELLO", exc)
                    self._reset()
                except MasterGoneError as exc:
                    log.warning("%s; saying HELLO to the master there now", exc)
                    self._reset(keep_build=True)
                    self._pause(RECONNECT_PAUSE)
                except MasterRefusedError as exc:
                    # once each: tried again every REFUSED_PAUSE until the operator acts
                    first = str(exc) not in self._refusals_logged
                    self._refusals_logged.add(str(exc))
                    log.log(logging.ERROR if first else logging.DEBUG, "%s; trying again", exc)
                    self._reset(keep_build=True)
                    self._pause(REFUSED_PAUSE)
                except MasterConfusedError as exc:
                    log.error("the master is confused (%s); starting again from HELLO", exc)
                    self._reset()
                    # Not at once: a master that answers nonsense instantly would get a flood.
                    self._pause(self.config.sleep_interval)
        except MasterSaidDieError:
            log.warning("the master told us to stop")
            self._say_bye()
        except _StopRequestedError:
            log.warning("stopping")
            self._say_bye()
        finally:
            self._reset()
            if self._own_context:
                self._context.term()
        return 0

    # -- the Slave Driver conversation ---------------------------------------------------------

    def _session(self) -> None:
        """One conversation, from HELLO until an exception ends it."""
        self._connect()
        action, data = self._request("HELLO", self.hello)
        if action != "ACK":
            raise MasterConfusedError(f"{action} in reply to HELLO")
        self.slave_id, self.pypi_url = data
        log.info(
            "connected to the master as slave %d (%s); building from %s",
            self.slave_id,
            self.interpreter.abi_tag,
            self.pypi_url,
        )
        if self._build is not None:
            self._resume(self._build)
        while True:
            action, data = self._request("IDLE", self.stats())
            if action == "SLEEP":
                log.debug("nothing to build; sleeping")
                self._pause(spread(self.config.sleep_interval))
            elif action == "BUILD":
                package, version = data
                self._run_build(package, version)
            else:
                raise MasterConfusedError(f"{action} in reply to IDLE")

    def _resume(self, build: Build) -> None:
        """Offer the new master the build begun for the last one: if it still awaits a build,
        the master keeps it (and a finished one is taken, not redone); if not, it is dropped."""
        action, _ = self._request("RESUME", (build.package, build.version))
        if action == "CONT":
            log.info("the master kept our build of %s %s", build.package, build.version)
            self._follow_build(build)
        elif action == "DONE":
            log.info("the master no longer wants %s %s", build.package, build.version)
            self._discard_build()
        else:
            raise MasterConfusedError(f"{action} in reply to RESUME")

    def _run_build(self, package: str, version: str) -> None:
        assert self.pypi_url is not None  # set by ACK before any BUILD
        log.info("building %s %s", package, version)
        build = self._build = self._builder_factory(self.pypi_url).start(package, version)
        self._follow_build(build)

    def _follow_build(self, build: Build) -> None:
        """Tell the master how *build* goes until it is reported (and its files sent)."""
        package, version = build.package, build.version
        kept = False
        try:
            # BUSY at once, so that BUILT always answers a CONT as the spec has it, even for a
            # build over before the first ping.
            action, _ = self._request("BUSY", self.stats())
            while True:
                if action == "DONE":
                    log.warning("the master cancelled the build of %s %s", package, version)
                    return
                if action != "CONT":
                    raise MasterConfusedError(f"{action} in reply to BUSY")
                if self._wait_for(build, self.config.busy_interval):
                    break
                action, _ = self._request("BUSY", self.stats())
            result = build.result
            log.info(
                "build of %s %s %s after %s",
                package,
                version,
                "succeeded" if result.status else "failed",
                result.duration,
            )
            action, data = self._send_built(result)
            while action == "SEND":
                self._transfer(build, data)
                action, data = self._request("SENT")
            if action != "DONE":
                raise MasterConfusedError(f"{action} in reply to BUILT or SENT")
        except MasterGoneError:
            kept = True  # for the master there now
            raise
        finally:
            if not kept:
                self._discard_build()

    def _send_built(self, result: BuildResult) -> tuple[str, Any]:
        result = result._replace(output=_trim(result.output, _OUTPUT_LIMIT))
        try:
            return self._request("BUILT", result)
        except ProtocolError as exc:
            # Raised before anything was sent. Something about the wheels does not fit the
            # protocol (a name too long, too many files): the master must still hear of the build.
            log.error("cannot report the build as it is: %s", exc)
            note = f"\n[piwheels] the build's result could not be reported: {exc}\n"
            output = _trim(result.output, _OUTPUT_LIMIT - len(note.encode())) + note
            return self._request("BUILT", BuildResult(False, result.duration, output, []))

    def _connect(self) -> None:
        self._link = MasterLink(
            self._context,
            self.config.slave_queue,
            self.config.keys,
            file_address=self.config.file_queue,
            timeout=self.config.master_timeout.total_seconds(),
            clock=self._clock,
            check_stop=self._check_stop,
        )

    def _request(self, action: str, data: Any = NO_DATA) -> tuple[str, Any]:
        assert self._link is not None
        return self._link.request(action, data)

    def _say_bye(self) -> None:
        """Tell the master we are going (the build is already gone), without waiting long."""
        self._discard_build()
        if self._link is not None:
            self._link.say_bye(self.config.bye_timeout.total_seconds())

    def _reset(self, *, keep_build: bool = False) -> None:
        """Forget the master: kill any build (unless *keep_build*: it is offered to the next
        master), drop the socket (a REQ missing a reply is stuck)."""
        if not keep_build:
            self._discard_build()
        if self._link is not None:
            self._link.close()
            self._link = None
        self.slave_id = None
        self.pypi_url = None

    def _discard_build(self) -> None:
        build, self._build = self._build, None
        if build is not None:
            if build.is_alive():
                log.warning("killing the build of %s %s", build.package, build.version)
            build.cleanup()

    # -- the File Juggler transfer -------------------------------------------------------------

    def _transfer(self, build: Build, filename: str) -> None:
        """Serve the File Juggler's FETCHes for *filename* until it says DONE or goes quiet.

        A silent File Juggler ends the transfer rather than the session: SENT then goes to the
        Slave Driver, which knows whether the file arrived and asks again if not; if the whole
        master is gone, SENT times out and the slave starts again from HELLO as usual.
        """
        try:
            path = build.wheel_path(filename)
        except (KeyError, RuntimeError):
            raise MasterConfusedError(f"SEND {filename!r}: not a file of this build") from None
        try:
            wheel = path.open("rb")
        except OSError as exc:
            # SENT all the same: the master finds the file missing and decides what to do.
            log.error("cannot send %s: %s", filename, exc)
            return
        assert self.slave_id is not None  # set by ACK before any SEND
        assert self._link is not None
        log.info("sending %s to the master", filename)
        with wheel:
            self._link.files.send(
                self.slave_id,
                wheel,
                timeout=self.config.master_timeout.total_seconds(),
                clock=self._clock,
                check_stop=self._check_stop,
            )

    # -- waiting -------------------------------------------------------------------------------

    def _check_stop(self) -> None:
        if self._stopping:
            raise _StopRequestedError

    def _pause(self, interval: timedelta) -> None:
        deadline = self._clock() + interval.total_seconds()
        self._check_stop()
        while (remaining := deadline - self._clock()) > 0:
            time.sleep(min(remaining, POLL_SLICE))
            self._check_stop()

    def _wait_for(self, build: Build, interval: timedelta) -> bool:
        """Wait up to *interval* for *build* to end; True if it has."""
        deadline = self._clock() + interval.total_seconds()
        while True:
            self._check_stop()
            remaining = deadline - self._clock()
            if remaining <= 0:
                return not build.is_alive()
            if build.wait(min(remaining, POLL_SLICE)):
                return True

    def _default_builder(self, index_url: str) -> Builder:
        if self._sandbox is None:
            self._sandbox = make_sandbox()
        first = self._toolchains is None
        if self._toolchains is None:
            self._toolchains = find_toolchains(
                hidden=self._sandbox.hidden if self._sandbox.isolated else (),
                private=[self.config.work_root],
                extra=self.config.toolchains,
            )
        builder = Builder(
            self.interpreter,
            index_url,
            timeout=self.config.build_timeout,
            work_root=self.config.work_root,
            sandbox=self._sandbox,
            toolchains=self._toolchains,
            limits=self.config.limits,
        )
        if first:
            log.info("%s", self._toolchains.describe())
            log.info("build limits: %s", builder.describe_limits())
        return builder


def _trim(text: str, limit: int) -> str:
    """*text* if its UTF-8 fits in *limit* bytes, else its start and end around a note."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    note = "\n[... {} bytes omitted to fit the protocol ...]\n"
    # Sized for the longest count it could hold, so the result never exceeds the limit.
    half = (limit - len(note.format(len(data)))) // 2
    # A cut may split a character: "ignore" drops its pieces rather than inventing one.
    head = data[:half].decode("utf-8", "ignore")
    tail = data[len(data) - half :].decode("utf-8", "ignore")
    return head + note.format(len(data) - 2 * half) + tail
