"""The Slave Driver under load: hundreds of slaves with instant builds against a real master.

A real master (:class:`piwheels.master.PiwMaster`, every task but Cloud Gazer, production
intervals, logging at INFO to a file as ``piw-master`` does) runs in a process of its own on a
copy of the synthetic PyPI made by ``fill_db.py``, with fsync on. SLAVES simulated slaves then
speak the whole protocol to it over TCP on 127.0.0.1 for SECONDS: HELLO, IDLE, BUILD, BUSY/CONT,
BUILT with one tiny real wheel (40% ``py3-none-any``, the rest for the slave's ABI), SEND, the
File Juggler's HELLO/FETCH/CHUNK/DONE, SENT, DONE, and IDLE again at once: builds take no time,
so this is the master at saturation. There the master tells idle slaves to SLEEP while it
owes more than ``max_backlog`` answers to the database and the File Juggler (see
``SlaveDriver.behind``): the SLEEPs are counted, and builds per second show what it costs.

The master has builder keys, as ``piw-master`` always has (its key pair made in the work
directory's ``keys/`` before it starts, as at its first start): both builder queues are
CurveZMQ servers behind its ZAP handler. Each simulated slave has a key pair of its own, made
as ``piw-slave`` makes its own and trusted as ``piw-trust add`` trusts it (500 take about a
second), and connects to both queues with it, so every request and every file connection (a new
one per build: a handshake and a ZAP request each) is encrypted and its key checked.

CurveZMQ's cost: once the instant run is over, the same master takes the same load again for
PLAIN_SECONDS over plain queues (``--insecure-slave-queue``/``--insecure-file-queue``, opened
beside the secure ones) from keyless slaves; its builds per second, reply latencies and CPU
time per build (the master's, and the simulated slaves' own) are reported beside the CurveZMQ
run's, as ratios CurveZMQ / plain, and so is the time the 500 connections, made in the same
instant just before each run, took to finish their handshakes (CurveZMQ's, with a ZAP request
each, against plain ZMTP's greeting). Cross-checks (another keyed builder builds again the first
builds of every key and a share of the rest) are off unless CROSS_CHECKS is 1: only builders
with keys check or are checked, so with them on the two runs would not do the same work, and
what they cost is not CurveZMQ's. (The simulated wheels are reproducible: a check agrees.)

The slaves live in WORKERS processes, each driving its share through one event loop, with one
REQ socket (one TCP connection, one identity) per slave and a DEALER for its files, as real
slaves have: the master cannot tell them from 500 machines. 500 processes of their own would
need ~12 GB and leave two cores switching between them, measuring the scheduler, not the master.

Figures: builds recorded per second (counted in the database); the latency of every reply the
master sends (Slave Driver and File Juggler), as each slave sees it: median, p99, max; replies
that took longer than the slaves' master timeout (5 minutes, SlaveConfig's default); and the
master's resident memory (its peak, VmHWM) against its own at rest before the slaves came.
Every slave connects just before a run. In the paced and instant runs each says its first
HELLO at a random moment of the first RAMP_SECONDS, as the machines of a farm switched on boot
each at its own pace (after a master restart, slaves come back as their own master timeouts
pass, spread wider still); replies to the requests of each run's first START_SECONDS are also
counted apart ("HELLO (start)"), and a p99 without them is given beside the p99 of all
replies. A short run of its own, first, to the master at rest, has every slave say HELLO in the
same instant (STORM_SECONDS): each slave's first reply is measured there. That storm is bound
by the Slave Driver answering one message after another: 500 HELLOs and the 500 IDLEs that
follow them at ~0.1 ms of its time each put the last reply ~0.1 s after the first request
whatever else happens. (The connections are made ahead, every slave's in the same instant, and
a run starts once all their handshakes are over: in a simulator the slaves' side of them is
not the master's cost, see ``slave_sim._worker``. The master's side is: how long the 500
handshakes took is reported under CurveZMQ's cost.)

Reference, same run, same workers and slaves: a bare ZeroMQ ROUTER (plain, no keys) that
answers every IDLE at once with a canned SLEEP. Its round trips per second, divided by the six
round trips of a build, are the reference for builds per second.

Run: ``python bench/bench_slaves.py [--quick] [--slaves N] [--workers N] [--seconds N] ...``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import fill_db
import psycopg
from harness import Row, Sizes, standalone
from slave_sim import (
    MASTER_TIMEOUT,
    Outcome,
    echo_main,
    free_port,
    raise_fd_limit,
    run_slaves,
)

from piwheels.builder_keys import MASTER_KEY, SLAVE_KEY, TRUSTED, ClientKeys, TrustedKeys, key_pair
from piwheels.cli.log_output import LazyFileHandler
from piwheels.cli.options import LOG_FORMAT
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig

SIZES: dict[str, int | float] = {
    "slaves": 500,
    "workers": 4,
    "seconds": 60,
    # a second run, paced: each build takes this long on average (500 slaves -> ~17 builds/s
    # offered, still several times what a real farm of 500 sees); 0 skips it
    "paced_build_seconds": 30,
    "echo_seconds": 15,
    # CurveZMQ's cost: the instant run again, as long, over the same master's plain (insecure)
    # queues with keyless slaves; 0 skips it
    "plain_seconds": 60,
    # 1: cross-checks as in production (MasterConfig's defaults); 0: none. Only builders with
    # keys check and are checked, so with them the CurveZMQ runs do work the plain one does not
    "cross_checks": 0,
    # each slave of the paced and instant runs says its first HELLO at a random moment of
    # their first seconds, as the machines of a farm switched on boot each at its own pace
    "ramp_seconds": 2,
    # a run of its own where every slave says HELLO in the same instant; 0 skips it
    "storm_seconds": 5,
    # replies to requests of each run's first seconds (the slaves joining) are also counted
    # apart: the "after the first N s" rows leave them out
    "start_seconds": 10,
    "packages": 1_000_000,
    "versions": 8_000_000,
    "builds": 5_000_000,
    "none_fraction": 0.4,
    "durable": 1,
}
QUICK: dict[str, int | float] = {
    "slaves": 5,
    "workers": 1,
    "seconds": 5,
    "paced_build_seconds": 1,
    "echo_seconds": 2,
    "plain_seconds": 3,
    "ramp_seconds": 0.5,
    "storm_seconds": 1,
    "start_seconds": 1,
    "packages": 1000,
    "versions": 8000,
    "builds": 5000,
}

SCRATCH = "bench_slaves"
ROUND_TRIPS_PER_BUILD = 6  # IDLE, BUSY, BUILT, file HELLO, CHUNK, SENT
# The synthetic database's files exist only as records; the Scribe says so (a line a project).
SYNTHETIC = "files are recorded but missing from"


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- the master and the reference --------------------------------------------------------------


def _master_main(config: MasterConfig, log_path: str) -> None:
    """The master process: PiwMaster in its main thread, so SIGTERM stops it cleanly."""
    raise_fd_limit()
    logging.basicConfig(
        level=logging.INFO,
        format=LOG_FORMAT,
        handlers=[LazyFileHandler(log_path, encoding="utf-8")],
        force=True,
    )
    sys.exit(PiwMaster(config, follow_pypi=False).run())


def _echo_reference(ctx: Any, sizes: Sizes, abis: list[str]) -> Outcome:
    address = f"tcp://127.0.0.1:{free_port()}"
    echo = ctx.Process(target=echo_main, args=(address,), name="bench-echo")
    echo.start()
    try:
        return run_slaves(
            ctx,
            int(sizes["slaves"]),
            int(sizes["workers"]),
            abis,
            (address, address),
            float(sizes["echo_seconds"]),
            echo=True,
            start_seconds=float(sizes["start_seconds"]),
        )
    finally:
        echo.terminate()
        echo.join(10)


def master_config(dsn: str, work: Path, abis: list[str], **overrides: Any) -> MasterConfig:
    """Production settings (but *overrides*), every socket on loopback or in *work*.

    Builder keys included, as ``piw-master`` always has them: the master's key pair is made in
    *work*/keys (as at its first start in DATA_DIR/keys), so the builder queues are CurveZMQ
    servers that admit only the keys trusted there (see :func:`trusted_builders`)."""
    key_dir = work / "keys"
    key_pair(key_dir, MASTER_KEY)
    config = MasterConfig(
        dsn=dsn,
        output_path=fill_db.steady_output(dsn),
        build_abis=abis,
        slave_queue=f"tcp://127.0.0.1:{free_port()}",
        file_queue=f"tcp://127.0.0.1:{free_port()}",
        control_queue=f"ipc://{work}/sockets/control",
        status_queue=f"ipc://{work}/sockets/status",
        import_queue=f"ipc://{work}/sockets/import",
        key_dir=key_dir,
    )
    return replace(config, **overrides)


def trusted_builders(config: MasterConfig, count: int) -> list[ClientKeys]:
    """A key pair for each of *count* builders, made as ``piw-slave`` makes its own (in a key
    directory of its own, beside *config*'s), each trusted by the master as ``piw-trust add``
    trusts it; with the master's public key. Made before the master starts: the trusted keys
    are re-read at every message while their directory changed less than a second ago."""
    assert config.key_dir is not None
    master, _ = key_pair(config.key_dir, MASTER_KEY, make=False)
    trusted = TrustedKeys(config.key_dir / TRUSTED)
    keys = []
    for n in range(count):
        pair, _ = key_pair(config.key_dir.parent / "builder-keys" / f"sim{n}", SLAVE_KEY)
        trusted.add(pair.public, f"simulated slave {n}")
        keys.append(ClientKeys(pair, master.public))
    return keys


def _wait_for_master(log_path: Path, process: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise RuntimeError(f"the master exited (status {process.exitcode}); see {log_path}")
        if log_path.exists() and "master running" in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the master did not start within {timeout}s; see {log_path}")


def wait_until_idle(dsn: str, timeout: float = 900.0) -> float:
    """Wait until the master's start-up queries are over (the statistics, the search index
    and the index root of a million projects take a while); return how long that took."""
    started = time.monotonic()
    quiet = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while quiet < 4 and time.monotonic() - started < timeout:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active'",
                (fill_db.MASTER_ROLE,),
            ).fetchone()
            quiet = quiet + 1 if row == (0,) else 0
            time.sleep(0.5)
    return time.monotonic() - started


class RssSampler(threading.Thread):
    """The largest resident size of a process seen while running, sampled twice a second."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.largest = 0
        self.last = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.last = _rss_kib(self.pid)
            self.largest = max(self.largest, self.last)


# -- the benchmark -----------------------------------------------------------------------------


def run(sizes: Sizes, *, data_dir: Path = fill_db.BENCH_PG) -> list[Row]:
    fill_sizes = fill_db.Sizes.of(sizes)
    abis = list(fill_sizes.abis)
    ctx = multiprocessing.get_context("spawn")
    raise_fd_limit()
    echo = _echo_reference(ctx, sizes, abis)
    _note(f"echo reference: {len(echo.latencies)} round trips in {echo.seconds:g}s")
    _note_handshakes("echo reference (a bare ROUTER, plain)", echo)
    server = fill_db.bench_server(data_dir, durable=False)
    try:
        template = fill_db.filled_database(server, fill_sizes, log=_note)
        server = fill_db.bench_server(data_dir, durable=bool(sizes["durable"]))
        dsn = fill_db.scratch_copy(server, template, SCRATCH)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-slaves-") as work:
                return _against_master(ctx, sizes, fill_sizes, echo, dsn, Path(work))
        finally:
            server.drop_database(SCRATCH)
    finally:
        server.stop()


def _against_master(
    ctx: Any, sizes: Sizes, fill_sizes: fill_db.Sizes, echo: Outcome, dsn: str, work: Path
) -> list[Row]:
    """Run the slaves against a real master on *dsn*; the rows of what they and it did."""
    abis = list(fill_sizes.abis)
    plain_seconds = float(sizes["plain_seconds"])
    # the plain queues, for CurveZMQ's cost (as piw-master --insecure-slave-queue/-file-queue)
    plain_queues = (f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    overrides: dict[str, Any] = {}
    if plain_seconds > 0:
        overrides |= {
            "insecure_slave_queue": plain_queues[0],
            "insecure_file_queue": plain_queues[1],
        }
    if not sizes["cross_checks"]:
        overrides |= {"cross_check_first": 0, "cross_check_share": 0.0}
    config = master_config(fill_db.master_dsn(dsn), work, abis, **overrides)
    made = time.perf_counter()
    keys = trusted_builders(config, int(sizes["slaves"]))
    _note(
        f"{len(keys)} builder key pairs made and trusted in {time.perf_counter() - made:.1f}s:"
        " one per simulated slave"
    )
    log_path = work / "master.log"
    process = ctx.Process(target=_master_main, args=(config, str(log_path)), name="bench-master")
    process.start()

    def slaves(
        seconds: float, *, ramp: bool = True, plain: bool = False, **options: Any
    ) -> Outcome:
        return run_slaves(
            ctx,
            int(sizes["slaves"]),
            int(sizes["workers"]),
            abis,
            plain_queues if plain else (config.slave_queue, config.file_queue),
            seconds,
            echo=False,
            ramp_seconds=float(sizes["ramp_seconds"]) if ramp else 0.0,
            keys=None if plain else keys,
            **options,
        )

    try:
        _wait_for_master(log_path, process)
        settled = wait_until_idle(dsn)
        rest = _rss_kib(process.pid)
        _note(
            f"master (pid {process.pid}) at rest after {settled:.0f}s of start-up work:"
            f" {rest / 1024:.0f} MiB resident, its start-up's peak (VmHWM)"
            f" {_rss_kib(process.pid, 'VmHWM') / 1024:.0f} MiB"
        )
        sampler = RssSampler(process.pid)
        sampler.start()
        storm = paced = plain = None
        plain_recorded, plain_cpu = 0, 0.0
        seconds, start = float(sizes["seconds"]), float(sizes["start_seconds"])
        if (storm_seconds := float(sizes["storm_seconds"])) > 0:
            storm = slaves(storm_seconds, ramp=False, start_seconds=storm_seconds)
        if (build_seconds := float(sizes["paced_build_seconds"])) > 0:
            paced = slaves(seconds, build_seconds=build_seconds, start_seconds=start)
            _note(f"paced run: {paced.recorded} builds seen by the slaves")
        first_build = _last_build_id(dsn)  # the instant run's builds are counted from here
        cpu = _cpu_seconds(process.pid)
        outcome = slaves(seconds, start_seconds=start)
        master_cpu = _cpu_seconds(process.pid) - cpu
        sampler.done.set()
        sampler.join()
        peak = _rss_kib(process.pid, "VmHWM")
        # the builds still in flight at the end are recorded before the next run counts
        wait_until_idle(dsn, timeout=60)
        last_build = _last_build_id(dsn)
        recorded = _builds_between(dsn, first_build, last_build)
        if plain_seconds > 0:
            cpu = _cpu_seconds(process.pid)
            plain = slaves(plain_seconds, plain=True, start_seconds=start)
            plain_cpu = _cpu_seconds(process.pid) - cpu
            wait_until_idle(dsn, timeout=60)
            plain_recorded = _builds_between(dsn, last_build, _last_build_id(dsn))
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
            process.join(60)
        if process.is_alive():
            process.kill()
            process.join()
    log = log_path.read_text(errors="replace").splitlines()
    synthetic = sum(SYNTHETIC in line for line in log)
    outcome.errors += [
        f"master: {line}"
        for line in log
        if (" ERROR " in line or " CRITICAL " in line) and SYNTHETIC not in line
    ]
    _note(f"({synthetic} log lines about synthetic files missing from disk: expected)")
    # what kept the database busy (each Oracle's minute-by-minute account)
    for line in log:
        if "Oracle" in line and " busy " in line:
            _note(f"  master: {line}")
    rows = _rows(sizes, fill_sizes, echo, outcome, recorded, (rest, sampler.largest, peak))
    if paced is not None:
        rows += _paced_rows(sizes, echo, paced)
    if storm is not None:
        rows += _storm_rows(sizes, echo, storm)
    if plain is not None:
        rows += _curve_rows(
            sizes, (outcome, recorded, master_cpu), (plain, plain_recorded, plain_cpu)
        )
    return rows


def _curve_rows(
    sizes: Sizes, curve: tuple[Outcome, int, float], plain: tuple[Outcome, int, float]
) -> list[Row]:
    """CurveZMQ's cost: the instant run (keys, as in production) beside the same run over the
    same master's plain queues with keyless slaves, just after it."""
    (secure, recorded, master_cpu), (bare, bare_recorded, bare_cpu) = curve, plain
    label = "CurveZMQ's cost, instant builds"
    reference = "the same over plain queues, no keys"
    _note_by_action(f"{label}: over plain queues", bare)
    _note_handshakes("over plain queues", bare)
    _note(
        f"over plain queues: recorded {bare_recorded} builds ({bare.recorded} seen by slaves),"
        f" {bare.sleeps} SLEEPs, {bare.timeouts} timeouts, {len(bare.errors)} errors;"
        f" master CPU {bare_cpu:.1f}s (CurveZMQ: {master_cpu:.1f}s), the slaves' processes"
        f" {bare.slaves_cpu:.1f}s (CurveZMQ: {secure.slaves_cpu:.1f}s)"
    )
    for error in bare.errors[:20]:
        _note(f"  {error}")
    ms = 1000.0
    # per build: the runs record different numbers of builds in their time
    per_build = max(recorded, 1), max(bare_recorded, 1)
    connecting = f"CurveZMQ's cost, {int(sizes['slaves'])} slaves connect in the same instant"
    return [
        Row(
            f"{connecting}, handshake done, median",
            _pct(secure.handshakes, 0.5) * ms,
            _pct(bare.handshakes, 0.5) * ms,
            "ms",
            reference,
        ),
        Row(
            f"{connecting}, last handshake done",
            max(secure.handshakes, default=0.0) * ms,
            max(bare.handshakes, default=0.0) * ms,
            "ms",
            reference,
        ),
        Row(
            f"{label}: builds recorded per second, {int(sizes['slaves'])} slaves",
            recorded / secure.seconds,
            bare_recorded / bare.seconds,
            "builds/s",
            reference,
        ),
        Row(
            f"{label}: reply latency, median",
            statistics.median(secure.latencies) * ms if secure.latencies else 0.0,
            statistics.median(bare.latencies) * ms if bare.latencies else 0.0,
            "ms",
            reference,
        ),
        Row(
            f"{label}: reply latency, p99",
            _pct(secure.latencies, 0.99) * ms,
            _pct(bare.latencies, 0.99) * ms,
            "ms",
            reference,
        ),
        Row(
            f"{label}: the master's CPU time per build recorded",
            master_cpu / per_build[0] * ms,
            bare_cpu / per_build[1] * ms,
            "ms",
            reference,
        ),
        Row(
            f"{label}: the simulated slaves' CPU time per build recorded",
            secure.slaves_cpu / per_build[0] * ms,
            bare.slaves_cpu / per_build[1] * ms,
            "ms",
            reference,
        ),
    ]


def _storm_rows(sizes: Sizes, echo: Outcome, storm: Outcome) -> list[Row]:
    """Every slave saying HELLO in the same instant, to a master at rest: the worst start."""
    slaves = int(sizes["slaves"])
    label = f"{slaves} slaves say HELLO in the same instant"
    _note_by_action(label, storm)
    _note_handshakes(f"{label} (the master at rest)", storm)
    answered_all = storm.timeouts == 0 and len(storm.first) == slaves
    return _spread_rows(
        f"{label}: first reply",
        storm.first,
        echo.first,
        f"bare ROUTER echo, each slave's first reply, {slaves} at once",
        p99_target=False,
        no_timeouts=answered_all,
    )


def _last_build_id(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(max(build_id), 0) FROM builds").fetchone()
    return int(row[0]) if row else 0


def _builds_between(dsn: str, after: int, upto: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM builds WHERE build_id > %s AND build_id <= %s", (after, upto)
        ).fetchone()
    return int(row[0]) if row else 0


def _paced_rows(sizes: Sizes, echo: Outcome, paced: Outcome) -> list[Row]:
    """The same slaves when builds take time: the master's replies below saturation."""
    label = f"paced ({float(sizes['paced_build_seconds']):g} s builds)"
    _note_by_action(label, paced)
    _note_handshakes(label, paced)
    _note(
        f"{label}: {len(paced.latencies)} replies, {paced.timeouts} timeouts, errors:"
        f" {paced.errors[:5]}"
    )
    return [
        Row(
            f"{label}: builds recorded per second",
            paced.recorded / paced.seconds,
            len(echo.latencies) / echo.seconds / ROUND_TRIPS_PER_BUILD,
            "builds/s",
            f"echo round trips/s / {ROUND_TRIPS_PER_BUILD}",
        ),
        *_latency_rows(label, sizes, echo, paced),
    ]


def _latency_rows(label: str, sizes: Sizes, echo: Outcome, outcome: Outcome) -> list[Row]:
    """Median, p99 (with and without the start) and max of the master's replies."""
    reference = f"bare ROUTER echo, {int(sizes['slaves'])} slaves"
    median, p99, worst = _spread_rows(
        f"{label}: reply latency",
        outcome.latencies,
        echo.latencies,
        reference,
        p99_target=True,
        no_timeouts=outcome.timeouts == 0,
    )
    start = float(sizes["start_seconds"])
    steady_p99 = _pct(outcome.steady(), 0.99)
    steady = Row(
        f"{label}: reply latency, p99 after the first {start:g} s",
        steady_p99 * 1000.0,
        _pct(echo.steady(), 0.99) * 1000.0,
        "ms",
        f"{reference}, after its first {start:g} s",
        "< 100 ms",
        steady_p99 < 0.1,
    )
    return [median, p99, steady, worst]


def _spread_rows(
    name: str,
    values: list[float],
    echoed: list[float],
    reference: str,
    *,
    p99_target: bool,
    no_timeouts: bool,
) -> list[Row]:
    """Median, p99 and max of *values* (seconds) beside the echo's, in ms."""
    ms = 1000.0
    p99 = _pct(values, 0.99)
    worst = max(values, default=0.0)
    return [
        Row(
            f"{name}, median",
            statistics.median(values) * ms if values else 0.0,
            statistics.median(echoed) * ms,
            "ms",
            reference,
        ),
        Row(
            f"{name}, p99",
            p99 * ms,
            _pct(echoed, 0.99) * ms,
            "ms",
            reference,
            "< 100 ms" if p99_target else "",
            p99 < 0.1 if p99_target else None,
        ),
        Row(
            f"{name}, max",
            worst * ms,
            max(echoed) * ms,
            "ms",
            reference,
            f"no slave times out (< {MASTER_TIMEOUT:g} s)",
            no_timeouts and worst < MASTER_TIMEOUT,
        ),
    ]


def _note_handshakes(label: str, outcome: Outcome) -> None:
    """How long the connections made in the same instant took to finish their handshakes."""
    shakes = outcome.handshakes
    _note(
        f"{label}: {len(shakes)} handshakes after connecting in the same instant, median"
        f" {_pct(shakes, 0.5) * 1000:.0f} ms, p99 {_pct(shakes, 0.99) * 1000:.0f} ms,"
        f" last {max(shakes, default=0.0) * 1000:.0f} ms"
    )


def _note_by_action(label: str, outcome: Outcome) -> None:
    """Each kind of reply's latency: which step of the protocol keeps slaves waiting."""
    _note(f"{label}, by the message answered:")
    for action, values in sorted(outcome.by_action.items()):
        median = statistics.median(values) * 1000
        _note(
            f"  {action:<10} {len(values):>7} replies, median {median:8.1f} ms,"
            f" p99 {_pct(values, 0.99) * 1000:8.1f} ms, max {max(values) * 1000:8.1f} ms"
        )


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _rows(
    sizes: Sizes,
    fill_sizes: fill_db.Sizes,
    echo: Outcome,
    master: Outcome,
    recorded: int,
    rss_kib: tuple[int, int, int],
) -> list[Row]:
    rest, during, peak = rss_kib
    slaves = int(sizes["slaves"])
    _note_by_action("instant builds", master)
    _note_handshakes("instant builds", master)
    _note(
        f"recorded {recorded} builds ({master.recorded} seen by slaves), {master.sleeps} SLEEPs,"
        f" {master.timeouts} timeouts, {len(master.errors)} errors;"
        f" master RSS {rest // 1024} MiB at rest, {during // 1024} MiB at most during the run,"
        f" {peak // 1024} MiB peak (VmHWM)"
    )
    for error in master.errors[:20]:
        _note(f"  {error}")
    echo_rate = len(echo.latencies) / echo.seconds / ROUND_TRIPS_PER_BUILD
    database = f"{fill_sizes.packages:,} packages / {fill_sizes.builds:,} builds"
    return [
        Row(
            f"instant builds: builds recorded per second, {slaves} slaves",
            recorded / master.seconds,
            echo_rate,
            "builds/s",
            f"echo round trips/s / {ROUND_TRIPS_PER_BUILD}",
        ),
        *_latency_rows("instant builds", sizes, echo, master),
        Row(
            f"master peak RSS (VmHWM), {slaves} slaves, {database}",
            peak / 1024,
            rest / 1024,
            "MiB",
            "the same master at rest before the slaves came",
            "< 1024 MiB",
            peak < 1 << 20,
        ),
    ]


def main(argv: Any = None) -> None:
    standalone(__doc__ or "", SIZES, QUICK, run, argv)


if __name__ == "__main__":
    main()
