"""The chaos campaign's faults, and the supervisor that brings back what they kill.

A schedule of faults is drawn from a seed (:func:`schedule`); :class:`Chaos` deals each one to
the farm, starts again what it killed (a slave on its own ``--dir``, the master on the same
database and output) and notes what happened, including anything that died without being hit.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from campaigns.farm import Farm, Slave, cmdline, descendants, readable

# The original chaos campaign's mix: 25 faults in 15 minutes.
MIX = {
    "slave-kill-build": 6,
    "slave-kill-transfer": 4,
    "master-term": 3,
    "master-kill": 4,
    "postgres-kill": 4,
    "master-freeze": 4,
}
# The master gives up on its PostgreSQL after 5 deaths in 10 minutes (by design): stay below.
POSTGRES_KILLS = 4
POSTGRES_WINDOW = 600.0
SENDING = re.compile(rb"sending (\S+) to the master")
BUILDING = re.compile(rb"building (?!from )(\S+ \S+)")


@dataclass
class Fault:
    at: float  # seconds from the start of the chaos
    kind: str
    draw: float  # a number in [0, 1) from the seed: which target, how long
    dealt: float = 0.0  # when it was, in fact
    patience: float = 60.0  # how long it may wait for its moment (a slave building, sending)
    note: str = ""


def schedule(seconds: float, faults: int, seed: int) -> list[Fault]:
    """*faults* faults spread over *seconds*, one in each equal slot at a seeded moment of
    its first half (a fault may take a while), their kinds in MIX's proportions."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible schedule, not a secret
    kinds: list[str] = []
    while len(kinds) < faults:
        batch = [kind for kind, n in MIX.items() for _ in range(n)]
        rng.shuffle(batch)
        kinds += batch
    slot = seconds / max(faults, 1)
    plan = [
        Fault(slot * (n + rng.random() / 2), kind, rng.random(), patience=slot)
        for n, kind in enumerate(kinds[:faults])
    ]
    kills: list[float] = []
    for fault in plan:
        if fault.kind == "postgres-kill":
            if len([t for t in kills if t > fault.at - POSTGRES_WINDOW]) >= POSTGRES_KILLS:
                fault.kind = "master-freeze"
            else:
                kills.append(fault.at)
    return plan


def described(pids: list[int]) -> str:
    return "; ".join(f"{pid} {readable(cmdline(pid))}" for pid in pids)


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and not zombie(pid)]


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def tail(path: Path, lines: int = 4) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class Chaos:
    """Deals faults to *farm*, whose master runs its own PostgreSQL in *postgres*."""

    def __init__(self, farm: Farm, postgres: Path, say: Callable[[str], None]) -> None:
        self.farm = farm
        self.postgres = postgres
        self.say = say
        self.started = time.monotonic()
        self.restarts: list[datetime] = []  # when each master was started again
        self.exits_on_term: list[int] = []
        self.postgres_back: list[float | None] = []  # seconds until a new one answered
        self.unexpected: list[str] = []  # deaths no fault caused
        self.orphans: list[str] = []  # processes that outlived a killed parent
        self.down: set[str] = set()  # what is down on purpose, for now

    def now(self) -> float:
        return time.monotonic() - self.started

    # the supervisor

    def supervise(self) -> None:
        """Start again the master or a slave that died without a fault, saying so."""
        master = self.farm.master
        if "master" not in self.down and master is not None and master.poll() is not None:
            self.unexpected.append(
                f"+{self.now():.0f} s: the master exited by itself, status {master.returncode}: "
                + " | ".join(tail(self.farm.master_log))
            )
            self.start_master()
        for slave in self.farm.slaves.values():
            if slave.label not in self.down and not slave.running:
                status = slave.proc.returncode if slave.proc else None
                self.unexpected.append(
                    f"+{self.now():.0f} s: slave {slave.label} exited by itself, status {status}: "
                    + " | ".join(tail(slave.log))
                )
                self.farm.start_slave(slave.label)

    def start_master(self) -> None:
        self.farm.restart_master()
        self.restarts.append(datetime.now())
        self.down.discard("master")

    def wait(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.supervise()
            time.sleep(min(0.25, max(until - time.monotonic(), 0)))

    # the faults

    def deal(self, fault: Fault) -> None:
        handler = {
            "slave-kill-build": self.kill_slave_building,
            "slave-kill-transfer": self.kill_slave_sending,
            "master-term": self.stop_master,
            "master-kill": self.kill_master,
            "postgres-kill": self.kill_postgres,
            "master-freeze": self.freeze_master,
        }[fault.kind]
        fault.dealt = self.now()
        fault.note = handler(fault)
        self.say(f"+{fault.dealt:6.1f} s  {fault.kind:<20} {fault.note}")

    def kill_slave(self, slave: Slave, draw: float) -> str:
        """SIGKILL *slave* alone, as a crash would; start it again on its --dir."""
        assert slave.proc is not None
        children = list(descendants(slave.proc.pid))
        self.down.add(slave.label)
        slave.proc.kill()
        slave.proc.wait(10)
        delay = 1 + 6 * draw
        self.wait(delay)
        left = alive(children)
        if left:
            self.orphans.append(f"slave {slave.label}: {described(left)}")
        self.farm.start_slave(slave.label)
        self.down.discard(slave.label)
        return f"started again after {delay:.1f} s" + (f"; {len(left)} orphans" if left else "")

    def kill_slave_building(self, fault: Fault) -> str:
        """Kill a slave that has a build directory: it is mid-build."""
        deadline = time.monotonic() + fault.patience
        while time.monotonic() < deadline:
            busy = [
                s for s in self.farm.slaves.values() if s.running and any(s.root.glob("build-*"))
            ]
            if busy:
                slave = busy[int(fault.draw * len(busy))]
                found = BUILDING.findall(slave.log.read_bytes())
                what = found[-1].decode(errors="replace") if found else "?"
                return f"{slave.label} building {what}: " + self.kill_slave(slave, fault.draw)
            self.wait(0.1)
        return f"no slave was building within {fault.patience:.0f} s"

    def kill_slave_sending(self, fault: Fault) -> str:
        """Kill a slave the moment it says it is sending a wheel (16 MB ones first)."""
        offsets = {s.label: s.log.stat().st_size for s in self.farm.slaves.values() if s.running}
        deadline = time.monotonic() + fault.patience
        while time.monotonic() < deadline:
            for slave in self.farm.slaves.values():
                if not slave.running or slave.label not in offsets:
                    continue
                with slave.log.open("rb") as log:
                    log.seek(offsets[slave.label])
                    data = log.read()
                data = data[: data.rfind(b"\n") + 1]  # whole lines only
                offsets[slave.label] += len(data)
                sent = SENDING.findall(data)
                # a big wheel is still arriving when we strike; late on, take any wheel
                if sent and (b"_big-" in sent[-1] or time.monotonic() > deadline - 5):
                    parts = list((self.farm.output / "simple").glob("*/.*.part"))
                    note = self.kill_slave(slave, fault.draw)
                    during = "mid-transfer" if parts else "no .part seen yet"
                    return f"{slave.label} sending {sent[-1].decode()} ({during}): {note}"
            self.supervise()
            time.sleep(0.01)
        return f"no slave sent a wheel within {fault.patience:.0f} s"

    def master_children(self) -> list[int]:
        master = self.farm.master
        return [] if master is None else list(descendants(master.pid))

    def stop_master(self, fault: Fault) -> str:
        """SIGTERM: a clean stop, then a start on the same database and output."""
        master = self.farm.master
        assert master is not None
        self.down.add("master")
        started = time.monotonic()
        master.send_signal(signal.SIGTERM)
        try:
            status = master.wait(90)
        except subprocess.TimeoutExpired:
            master.kill()
            status = master.wait(10)
            self.unexpected.append(f"+{self.now():.0f} s: the master took 90 s over SIGTERM")
        self.exits_on_term.append(status)
        took = time.monotonic() - started
        delay = 2 + 6 * fault.draw
        self.wait(delay)
        self.start_master()
        return f"exit status {status} after {took:.1f} s; started again after {delay:.1f} s"

    def kill_master(self, fault: Fault) -> str:
        """SIGKILL the master alone; its PostgreSQL lives on, for the next master to adopt."""
        master = self.farm.master
        assert master is not None
        children = self.master_children()
        self.down.add("master")
        master.kill()
        master.wait(10)
        delay = 1 + 4 * fault.draw
        self.wait(delay)
        left = [pid for pid in alive(children) if b"postgres" not in cmdline(pid)]
        if left:
            self.orphans.append(f"master: {described(left)}")
        self.start_master()
        return f"started again after {delay:.1f} s" + (f"; {len(left)} orphans" if left else "")

    def postmaster(self) -> int | None:
        try:
            pid = int((self.postgres / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if alive([pid]) and b"postgres" in cmdline(pid) else None

    def kill_postgres(self, fault: Fault) -> str:
        """SIGKILL the master's PostgreSQL; the master is to start it again, and it is back
        once it answers a query."""
        pid = self.postmaster()
        if pid is None:
            self.postgres_back.append(None)
            return "no PostgreSQL running to kill"
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 90:
            new = self.postmaster()
            if new is not None and new != pid and self.answers():
                back = time.monotonic() - killed
                self.postgres_back.append(back)
                return f"postmaster {pid} killed; postmaster {new} answering after {back:.1f} s"
            self.wait(0.2)
        self.postgres_back.append(None)
        return f"postmaster {pid} killed; none answering 90 s later"

    def answers(self) -> bool:
        try:
            self.farm.query("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def freeze_master(self, fault: Fault) -> str:
        """SIGSTOP, then SIGCONT: a master that stalls (swapping, a VM paused)."""
        master = self.farm.master
        assert master is not None
        seconds = 5 + 20 * fault.draw
        self.down.add("master")
        master.send_signal(signal.SIGSTOP)
        try:
            self.wait(seconds)
        finally:
            master.send_signal(signal.SIGCONT)
            self.down.discard("master")
        return f"frozen for {seconds:.1f} s"
