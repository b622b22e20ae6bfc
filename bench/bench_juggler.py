"""Wheels through the File Juggler: throughput against a plain ZeroMQ copy, and master memory.

A real master (``piw-master``, in a process of its own, on a private PostgreSQL) and a real
slave (:class:`~piwheels.slave.agent.PiwSlave`, in this process) talk over TCP on 127.0.0.1.
Only the slave's builds are faked: each "build" writes a wheel (a real zip with METADATA and
one big stored member of random bytes) of the size the benchmark asks for, so everything after
it is the production code: BUILT, SEND, the File Juggler's FETCH/CHUNK window, hashing, fsync,
rename, SENT, the build recorded and its pages written. A transfer is timed from the slave's
HELLO on the file queue to the File Juggler's DONE (sent once the file is verified and renamed).
The master has builder keys, as ``piw-master`` always has: its key pair is made in its
``--data-dir``'s ``keys/`` before it starts (as at its first start), the slave's in a key
directory of its own, trusted as ``piw-trust add`` trusts it, so both of the slave's queues are
CurveZMQ connections, as in production. (Cross-checks need a second builder with a key: there
is none, so the slave builds only what it sends.)

* Throughput: REPEAT transfers of a TRANSFER_MB wheel, each followed by a plain copy of the very
  same file over the same loopback: a DEALER sends the file in 1 MiB frames as fast as the
  socket takes them, and a ROUTER in another process writes them to a file on the same disk and
  fsyncs it, as the File Juggler does. Medians of both; the target is 70% of the plain copy's
  throughput. CPU times of both ends are reported beside those of the plain copy's ends. The
  disk is synced before each timed run, so that none inherits another's writeback. The plain
  copy is plain ZeroMQ (no CurveZMQ): it is the yardstick, what moving the bytes costs at all.
* CurveZMQ's cost: the master also opens plain queues (``--insecure-slave-queue``,
  ``--insecure-file-queue``), where a second, keyless slave connects; each of the REPEAT rounds
  sends a TRANSFER_MB wheel through it too (before the CurveZMQ one in every other round, so
  neither always follows the other). Its throughput and both ends' CPU times are the reference
  of the CurveZMQ transfers' (ratio CurveZMQ / plain queue). Between rounds each slave holds a
  build that waits for the benchmark's word, saying BUSY twice a second: the only traffic
  besides the transfer measured.
* Memory: the master process's resident set (VmRSS; the peak from VmHWM, reset before each
  transfer, and from 10 ms samples) during a MEMORY_MB transfer, against its size just before.
  Targets: under 1 GiB, and growth no larger than during the TRANSFER_MB transfers (plus
  slack): independent of the file's size. The MEMORY_MB transfer's throughput is reported too,
  against a plain copy of that file.

Run: ``python bench/bench_juggler.py [--quick] [--transfer-mb N] [--memory-mb N] [--repeat N]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import zmq
from harness import Row, Sizes, standalone
from psycopg.conninfo import make_conninfo

from piwheels.abis import sorted_abis
from piwheels.builder_keys import MASTER_KEY, SLAVE_KEY, TRUSTED, ClientKeys, TrustedKeys, key_pair
from piwheels.db.database import Database
from piwheels.db.embedded.cluster import EmbeddedPostgres
from piwheels.db.migrate import migrate
from piwheels.db.project_rows import ProjectVersion
from piwheels.records.builds import FileState
from piwheels.slave.agent import PiwSlave, SlaveConfig
from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.interpreter import Interpreter
from piwheels.slave.sandbox import PlainSandbox

SIZES: dict[str, int] = {"transfer_mb": 100, "memory_mb": 1000, "repeat": 5}
QUICK: dict[str, int] = {"transfer_mb": 8, "memory_mb": 32, "repeat": 1}

MB = 1_000_000
MIB = 1 << 20
PACKAGE = "benchwheel"
ABI = "cp311"
TARGET_RATIO = 0.70
RSS_LIMIT = 1 << 30
# A transfer may cost the master some fixed memory (the FETCH window, socket buffers); what must
# not happen is memory growing with the file. Growth may exceed the small file's by this share
# of the extra bytes (or by 16 MiB, whichever is more) and still count as independent of size.
GROWTH_SLACK = 0.05
# The plain copy's frames: fixed, so tuning the File Juggler's chunks never moves the yardstick.
PLAIN_FRAME = 1 << 20
TRANSFER_TIMEOUT = 600.0  # seconds for one transfer, 1 GB on a slow disk included


# -- measuring a process ----------------------------------------------------------------------


def _status(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status, in bytes."""
    with Path(f"/proc/{pid}/status").open() as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(f"no {field} for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Usage(NamedTuple):
    before: int  # resident bytes just before the transfer
    peak: int  # the most resident bytes during it
    cpu: float  # CPU seconds the process spent during it

    @property
    def growth(self) -> int:
        return self.peak - self.before


class Watch:
    """Watches a process's memory and CPU while a transfer runs.

    The kernel's own peak (VmHWM, reset through clear_refs) misses nothing; the 10 ms samples
    are the fallback where clear_refs may not be written.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = _status(pid, "VmRSS")
        self.cpu = cpu_seconds(pid)
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _status(self.pid, "VmRSS"))

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        peak = max(self.peak, _status(self.pid, "VmRSS"))
        if self.hwm_reset:
            peak = max(peak, _status(self.pid, "VmHWM"))
        return Usage(self.before, peak, cpu_seconds(self.pid) - self.cpu)


# -- wheels and the faked build ---------------------------------------------------------------


def write_wheel(path: Path, size: int) -> None:
    """A valid wheel of about *size* bytes whose bulk is one incompressible stored member."""
    name, version = path.name.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    block = 4 * MIB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as wheel:
        wheel.writestr(
            f"{info}/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: "
            f"{version}\nSummary: a wheel for benchmarks\n",
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        with wheel.open(f"{name}/payload.bin", "w", force_zip64=True) as payload:
            left = size
            while left > 0:
                payload.write(os.urandom(min(block, left)))
                left -= block
        wheel.writestr(f"{info}/RECORD", "")


def file_state(path: Path) -> FileState:
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256()
    with path.open("rb") as wheel:
        while block := wheel.read(4 * MIB):
            digest.update(block)
    name, version = path.name.split("-")[:2]
    return FileState(
        path.name,
        path.stat().st_size,
        digest.hexdigest(),
        name,
        version,
        "py3",
        "none",
        "any",
        frozenset(),
        None,
    )


class BenchBuild(Build):
    """A build that waits for the benchmark to say how big a wheel to make, then makes it."""

    def _build(self) -> tuple[bool, list[FileState]]:
        plan: queue.Queue[int] = self._builder.plan  # type: ignore[attr-defined]
        while True:
            try:
                size = plan.get(timeout=0.1)
                break
            except queue.Empty:
                if self._kill_reason is not None:  # the slave is stopping
                    return False, []
        self.out_dir.mkdir()
        path = self.out_dir / f"{PACKAGE}-{self.version}-py3-none-any.whl"
        write_wheel(path, size)
        state = file_state(path)
        # The timed transfer must not share the disk with the writeback of this wheel.
        os.sync()
        return True, [state]


class BenchBuilder(Builder):
    def __init__(self, index_url: str, work_root: Path, plan: queue.Queue[int]) -> None:
        interpreter = Interpreter(Path(sys.executable), "3.11.0", "311", ABI, "linux_x86_64", "24")
        super().__init__(interpreter, index_url, timedelta(hours=1), work_root, PlainSandbox())
        self.plan = plan

    def start(self, package: str, version: str) -> Build:
        self.work_root.mkdir(parents=True, exist_ok=True)
        build = BenchBuild(self, package, version, Path(tempfile.mkdtemp(dir=self.work_root)))
        build.start()
        return build


@dataclass
class Transfer:
    filename: str
    size: int
    seconds: float
    master: Usage
    sender_cpu: float  # CPU seconds of this process (the slave's side) during the transfer


class TimedSlave(PiwSlave):
    """The real slave, with a stopwatch and a watch on the master around each file it sends."""

    def __init__(self, *args: Any, master_pid: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.master_pid = master_pid
        self.transfers: queue.Queue[Transfer] = queue.Queue()

    def _transfer(self, build: Build, filename: str) -> None:
        size = build.wheel_path(filename).stat().st_size
        watch = Watch(self.master_pid)
        cpu, started = time.process_time(), time.perf_counter()
        super()._transfer(build, filename)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        self.transfers.put(Transfer(filename, size, seconds, watch.stop(), cpu))


# -- the plain copy ---------------------------------------------------------------------------


def plain_receiver(address: str, directory: str) -> None:
    """The reference's receiving end (a process of its own, as the master is): each copy is a
    header frame with the size, then raw frames written to a new file, fsynced at the end."""
    context: zmq.Context[Any] = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.bind(address)
    target = Path(directory) / "plain-copy"
    while True:
        peer, header = sock.recv_multipart()
        if header == b"quit":
            break
        size, received = int(header), 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        while received < size:
            _, data = sock.recv_multipart()
            os.write(fd, data)
            received += len(data)
        os.fsync(fd)
        os.close(fd)
        sock.send_multipart([peer, b"done"])
        target.unlink()
    sock.close(linger=0)
    context.term()


class Copy(NamedTuple):
    seconds: float
    receiver_cpu: float
    sender_cpu: float


class PlainCopy:
    """The sending end of the reference, and the receiving process it talks to."""

    def __init__(self, directory: Path) -> None:
        self.address = f"tcp://127.0.0.1:{free_port()}"
        # A fresh interpreter, as the master has, rather than a fork of this one and its threads.
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from bench_juggler import plain_receiver; plain_receiver(*sys.argv[1:])"
        )
        self.process = subprocess.Popen([sys.executable, "-c", code, self.address, str(directory)])
        self.context: zmq.Context[Any] = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.connect(self.address)

    def copy(self, path: Path) -> Copy:
        """Send *path*; return when the receiver has it on disk."""
        cpu, sender_cpu = cpu_seconds(self.process.pid), time.process_time()
        started = time.perf_counter()
        self.sock.send(str(path.stat().st_size).encode())
        with path.open("rb") as source:
            while data := source.read(PLAIN_FRAME):
                self.sock.send(data)
        deadline = time.monotonic() + TRANSFER_TIMEOUT
        while not self.sock.poll(100):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the plain copy's receiver did not answer")
        self.sock.recv()
        return Copy(
            time.perf_counter() - started,
            cpu_seconds(self.process.pid) - cpu,
            time.process_time() - sender_cpu,
        )

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.sock.send(b"quit", zmq.NOBLOCK)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.sock.close(linger=0)
        self.context.term()


# -- the farm ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_database(server: EmbeddedPostgres, versions: int) -> str:
    """A migrated database whose cp311 queue holds *versions* versions; the master's DSN."""
    superuser = server.start()
    migrate(superuser, master_role="piwheels")
    dsn = make_conninfo(superuser, user="piwheels")
    db = Database(dsn)
    db.set_build_abis(sorted_abis([ABI]))
    released = datetime(2026, 1, 1, tzinfo=UTC)
    db.set_project(
        PACKAGE,
        PACKAGE,
        1,
        "wheels for benchmarks",
        "",
        [
            ProjectVersion(f"{n}.0", released + timedelta(days=n), None, True, False, "")
            for n in range(1, versions + 1)
        ],
    )
    db.close()
    return dsn


class BenchSlave(NamedTuple):
    slave: TimedSlave
    plan: queue.Queue[int]  # the size of the wheel its waiting build is to make
    thread: threading.Thread


class Farm:
    """A master process, and two timed slaves in threads (one with a builder key on the
    CurveZMQ queues, one on the plain queues without), in *work*; stopped by :meth:`close`."""

    def __init__(self, work: Path, versions: int) -> None:
        self.work = work
        self.output = work / "www"
        self.postgres = EmbeddedPostgres(work / "postgres", durable=False)
        dsn = prepare_database(self.postgres, versions)
        slave_queue = f"tcp://127.0.0.1:{free_port()}"
        file_queue = f"tcp://127.0.0.1:{free_port()}"
        plain_slave_queue = f"tcp://127.0.0.1:{free_port()}"
        plain_file_queue = f"tcp://127.0.0.1:{free_port()}"
        # The keys piw-master (DATA_DIR/keys), piw-slave and piw-trust add would make.
        key_dir = work / "data" / "keys"
        master, _ = key_pair(key_dir, MASTER_KEY)
        builder, _ = key_pair(work / "slave-keys", SLAVE_KEY)
        TrustedKeys(key_dir / TRUSTED).add(builder.public, "bench slave")
        self.log_path = work / "master.log"
        command = [
            sys.executable, "-c", ("import sys; from piwheels.cli.master import main; "
            "sys.exit(main())"),
            "--dsn", dsn, "--output-path", str(self.output), "--data-dir", str(work / "data"),
            "--no-follow", "--build-abi", ABI, "--queue-interval", "1",
            "--min-free-space", str(MIB),
            "--slave-queue", slave_queue, "--file-queue", file_queue,
            "--insecure-slave-queue", plain_slave_queue, "--insecure-file-queue", plain_file_queue,
            "--control-queue", f"ipc://{work}/sockets/control", "--status-queue", f"ipc://{work}/sockets/status",
            "--import-queue", f"ipc://{work}/sockets/import", "--log-file", str(self.log_path),
        ]  # fmt: skip
        self.master = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.keyed = self._slave(
            "bench", slave_queue, file_queue, ClientKeys(builder, master.public)
        )
        self.keyless = self._slave("bench-plain", plain_slave_queue, plain_file_queue, None)

    def _slave(
        self, label: str, slave_queue: str, file_queue: str, keys: ClientKeys | None
    ) -> BenchSlave:
        plan: queue.Queue[int] = queue.Queue()
        work_root = self.work / label
        config = SlaveConfig(
            slave_queue=slave_queue,
            file_queue=file_queue,
            label=label,
            work_root=work_root,
            master_timeout=timedelta(seconds=TRANSFER_TIMEOUT),
            busy_interval=timedelta(seconds=0.5),
            sleep_interval=timedelta(seconds=0.2),
            keys=keys,
        )
        slave = TimedSlave(
            config,
            BenchBuilder("", work_root, plan).interpreter,
            builder_factory=lambda url: BenchBuilder(url, work_root, plan),
            master_pid=self.master.pid,
        )
        thread = threading.Thread(target=slave.run, name=f"{label} slave")
        thread.start()
        return BenchSlave(slave, plan, thread)

    def transfer(self, size: int, *, plain: bool = False) -> Transfer:
        """Have the slave (with its builder key, or the keyless one on the plain queues if
        *plain*) build a wheel of *size* bytes and send it; wait until it is in place."""
        bench = self.keyless if plain else self.keyed
        bench.plan.put(size)
        deadline = time.monotonic() + TRANSFER_TIMEOUT
        while True:
            if self.master.poll() is not None:
                raise RuntimeError(f"the master exited ({self.master.returncode}):\n{self.tail()}")
            try:
                done = bench.slave.transfers.get(timeout=0.5)
                break
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no transfer within {TRANSFER_TIMEOUT}s:\n{self.tail()}"
                    ) from None
        published = self.output / "simple" / PACKAGE / done.filename
        if not published.exists():
            raise RuntimeError(f"{done.filename} was sent but not published:\n{self.tail()}")
        return done

    def published(self, filename: str) -> Path:
        return self.output / "simple" / PACKAGE / filename

    def tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-20:])
        except OSError:
            return "(no master log)"

    def close(self) -> None:
        for bench in (self.keyed, self.keyless):
            bench.slave.stop()
        for bench in (self.keyed, self.keyless):
            bench.thread.join(30)
        if self.master.poll() is None:
            self.master.terminate()  # SIGTERM: the master stops its tasks and exits
            try:
                self.master.wait(30)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()
        self.postgres.stop()


@contextlib.contextmanager
def workspace(needed: int) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="bench-juggler-"))
    try:
        free = shutil.disk_usage(work).free
        if free < needed:
            raise RuntimeError(
                f"{work} has {free / MB:.0f} MB free; this run needs {needed / MB:.0f}"
            )
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the benchmark ----------------------------------------------------------------------------


def mb_per_s(size: int, seconds: float) -> float:
    return size / MB / seconds


def run(sizes: Sizes) -> list[Row]:
    small, big, repeat = (
        int(sizes["transfer_mb"]) * MB,
        int(sizes["memory_mb"]) * MB,
        int(sizes["repeat"]),
    )
    # The slave's own log (its unsandboxed builds, BYE) is not what is measured here.
    logging.getLogger("piwheels").setLevel(logging.ERROR)
    # Published wheels stay until the end (the master would refuse to overwrite them anyway).
    with workspace(needed=(small * repeat * 2 + big) * 2 + 200 * MB) as work:
        # each slave's first build, one each per round, the large one, a build each left over
        farm = Farm(work, versions=2 * repeat + 5)
        plain = PlainCopy(work)
        try:
            # A first small transfer of each slave, and a copy: connections made, code warm.
            warm = farm.transfer(MIB)
            farm.transfer(MIB, plain=True)
            plain.copy(farm.published(warm.filename))
            sent: list[Transfer] = []
            copies: list[Copy] = []
            bare: list[Transfer] = []  # through the plain queue, no keys
            for round_ in range(repeat):
                if round_ % 2:
                    bare.append(farm.transfer(small, plain=True))
                    os.sync()
                sent.append(farm.transfer(small))
                # Nor may the copy share it with the writeback of the transfer before it.
                os.sync()
                # The reference copies exactly the bytes the File Juggler has just received.
                copies.append(plain.copy(farm.published(sent[-1].filename)))
                if not round_ % 2:
                    os.sync()
                    bare.append(farm.transfer(small, plain=True))
                print(
                    f"{sent[-1].size / MB:.0f} MB: File Juggler {sent[-1].seconds:.2f} s "
                    f"(master CPU {sent[-1].master.cpu:.2f} s), plain copy "
                    f"{copies[-1].seconds:.2f} s (receiver CPU {copies[-1].receiver_cpu:.2f} s),"
                    f" plain queue {bare[-1].seconds:.2f} s (master CPU {bare[-1].master.cpu:.2f}"
                    " s)",
                    flush=True,
                )
            large = farm.transfer(big)
            os.sync()
            large_copy = plain.copy(farm.published(large.filename))
            print(
                f"{large.size / MB:.0f} MB: File Juggler {large.seconds:.2f} s, "
                f"plain copy {large_copy.seconds:.2f} s",
                flush=True,
            )
        finally:
            plain.close()
            farm.close()
    return rows(sent, copies, large, large_copy) + curve_rows(sent, bare)


def curve_rows(sent: list[Transfer], bare: list[Transfer]) -> list[Row]:
    """CurveZMQ's cost: the transfers with the builder key beside those over the plain queue."""
    size = sent[0].size
    label, reference = f"{size / MB:.0f} MB", "the same over a plain queue, no keys"
    return [
        Row(
            f"CurveZMQ's cost: {label} wheel through the File Juggler",
            mb_per_s(size, statistics.median(t.seconds for t in sent)),
            mb_per_s(size, statistics.median(t.seconds for t in bare)),
            "MB/s",
            reference,
        ),
        Row(
            f"CurveZMQ's cost: {label}: the master's CPU time",
            statistics.median(t.master.cpu for t in sent),
            statistics.median(t.master.cpu for t in bare),
            "s",
            reference,
        ),
        Row(
            f"CurveZMQ's cost: {label}: the slave's CPU time",
            statistics.median(t.sender_cpu for t in sent),
            statistics.median(t.sender_cpu for t in bare),
            "s",
            reference,
        ),
    ]


def rows(sent: list[Transfer], copies: list[Copy], large: Transfer, large_copy: Copy) -> list[Row]:
    """Medians throughout: on a shared machine the best of a few runs is often one that
    happened to miss the neighbours' load, and one such run would decide the verdict."""
    size = sent[0].size
    typical = statistics.median(t.seconds for t in sent)
    typical_copy = statistics.median(c.seconds for c in copies)
    growth_small = statistics.median(t.master.growth for t in sent)
    slack = max(GROWTH_SLACK * (large.size - size), 16 * MIB)
    small_label, large_label = f"{size / MB:.0f} MB", f"{large.size / MB:.0f} MB"
    return [
        Row(
            f"{small_label} wheel through the File Juggler",
            mb_per_s(size, typical),
            mb_per_s(size, typical_copy),
            "MB/s",
            "plain ZeroMQ copy, write + fsync",
            f"ratio >= {TARGET_RATIO:.2f}",
            typical_copy / typical >= TARGET_RATIO,
        ),
        Row(
            f"{small_label}: the master's CPU time",
            statistics.median(t.master.cpu for t in sent),
            statistics.median(c.receiver_cpu for c in copies),
            "s",
            "the plain copy's receiver",
        ),
        Row(
            f"{small_label}: the slave's CPU time",
            statistics.median(t.sender_cpu for t in sent),
            statistics.median(c.sender_cpu for c in copies),
            "s",
            "the plain copy's sender",
        ),
        Row(
            f"{large_label} wheel through the File Juggler",
            mb_per_s(large.size, large.seconds),
            mb_per_s(large.size, large_copy.seconds),
            "MB/s",
            "plain ZeroMQ copy, write + fsync",
        ),
        Row(
            f"master's peak RSS during the {large_label} transfer",
            large.master.peak / MIB,
            large.master.before / MIB,
            "MiB",
            "its RSS just before",
            f"< {RSS_LIMIT / MIB:.0f} MiB",
            large.master.peak < RSS_LIMIT,
        ),
        Row(
            f"master's RSS growth during the {large_label} transfer",
            large.master.growth / MIB,
            growth_small / MIB,
            "MiB",
            f"median growth during the {small_label} transfers",
            f"< reference + {slack / MIB:.0f} MiB",
            large.master.growth < growth_small + slack,
        ),
    ]


if __name__ == "__main__":
    standalone(__doc__ or "", SIZES, QUICK, run)
