"""One build: ``pip wheel`` of one version of one package, sandboxed, and its wheels described.

A :class:`Build` runs in a thread of its own (started by :meth:`Builder.start
<piwheels.slave.builder.Builder.start>`) and may be killed from any other. pip runs in the
builder's :class:`~piwheels.slave.sandbox.Sandbox` within the build's limits; each wheel it
makes is inspected and passes the publish gate before it is reported; every line of the log,
pip's and ours, ends up in the BUILT message. A failed build's cause is diagnosed here too,
with the Debian packages of this builder's release that would provide what it lacked.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from piwheels.diagnosis import classify, over_limit, ran_out_of_space
from piwheels.failures import Diagnosis
from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.slave import release_time
from piwheels.slave.build_volume import BuildVolume
from piwheels.slave.debian import needs_of
from piwheels.slave.gate import check_wheel
from piwheels.slave.inspection import (
    BadWheelError,
    apt_dependencies,
    file_state,
    foreign_wheel,
    not_plain_file,
    read_metadata,
    request_problem,
)
from piwheels.slave.limits import DISK_CHECK_INTERVAL, MemoryCage, disk_used
from piwheels.slave.release_time import source_date_epoch
from piwheels.slave.sandbox import RunResult, SandboxedProcess, remove_tree

if TYPE_CHECKING:
    from piwheels.slave.builder import Builder

__all__ = ["Build"]

_SCAN_TIMEOUT = 120.0  # for ldd over a wheel's libraries
# Of a failed build's wants, at most this many are looked up in Debian's data: each lookup is a
# search of the release's Contents lists, and BUILT waits for them all.
MAX_LOOKUPS = 4
GATE_TIMEOUT = 300.0  # seconds for the publish gate's imports of one wheel
# Two builders of one ABI and platform make byte-identical wheels when the backend allows it:
# every file stamped with SOURCE_DATE_EPOCH (set per build), and compiled C without debug
# information, which holds the build's absolute (random) paths. Debug information is rarely
# wanted in a wheel anyway, and makes it several times larger. A project's own flags still win.
REPRODUCIBLE = {"CFLAGS": "-g0", "CXXFLAGS": "-g0"}

# Free space on the machine's disk below which a build's "No space left on device" is the
# machine's (given back, to be tried again) rather than its own limit (failed).
MACHINE_DISK_MARGIN = 256 << 20

log = logging.getLogger("piwheels.slave.builder")  # the name a build's log lines always had


class Build:
    """One build in progress or finished; see :meth:`Builder.start`."""

    def __init__(self, builder: Builder, package: str, version: str, build_dir: Path) -> None:
        self.package = package
        self.version = version
        self.build_dir = build_dir
        self._builder = builder
        self._log = _BuildLog()
        self._lock = threading.Lock()
        self._process: SandboxedProcess | None = None
        self._volume: BuildVolume | None = None
        self._kill_reason: str | None = None
        self._result: BuildResult | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"build {package} {version}", daemon=True
        )

    @property
    def out_dir(self) -> Path:
        """Where pip writes the wheels."""
        return self.build_dir / "out"

    def start(self) -> None:
        """Start the build thread (done by :meth:`Builder.start`)."""
        self._thread.start()

    def is_alive(self) -> bool:
        """True while the build runs."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to *timeout* seconds for the end; True if the build has finished."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def kill(self, reason: str = "the build was cancelled") -> None:
        """Stop the build (its whole process tree) from any thread; it then ends as failed."""
        with self._lock:
            if self._kill_reason is None:
                self._kill_reason = reason
            process = self._process
        if process is not None:
            process.kill(reason)

    @property
    def result(self) -> BuildResult:
        """The outcome; only once the build has finished."""
        if self._result is None:
            raise RuntimeError(f"the build of {self.package} {self.version} is still running")
        return self._result

    def wheel_path(self, filename: str) -> Path:
        """Where the reported wheel *filename* lies; only names from :attr:`result` are valid."""
        if filename not in {f.filename for f in self.result.files}:
            raise KeyError(f"{filename!r} is not a wheel of this build")
        return self.out_dir / filename

    def cleanup(self) -> None:
        """Stop the build if it still runs, and delete everything it left on disk."""
        self.kill("the build was cleaned up while running")
        self._thread.join()
        if self._volume is not None:
            self._volume.release()
            self._volume = None
        remove_tree(self.build_dir)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            status, files = self._build()
        except Exception as exc:  # a bug of ours must still end as a failed build, not a hang
            self._log.note(f"internal error: {exc!r}")
            status, files = False, []
        # Only the wheels are needed from here on (for SEND); the rest may be large.
        for scratch in ("home", "tmp", "scan"):
            remove_tree(self.build_dir / scratch)
        duration = timedelta(seconds=time.monotonic() - started)
        self._log.note(f"build {'succeeded' if status else 'failed'} after {duration}")
        output = self._log.text()
        diagnosis = None if status else self._diagnose(output)
        self._result = BuildResult(status, duration, output, files, diagnosis)

    def _diagnose(self, output: str) -> Diagnosis | None:
        """The failure's cause, with the Debian packages of this builder's release that would
        provide what the build lacked (the master classifies the log again; the packages only
        this machine can tell)."""
        try:
            diagnosis = classify(output, self.package, self.version)
            needs, note = needs_of(diagnosis.wants[:MAX_LOOKUPS])
        except Exception:  # the build's result must still be reported
            log.exception("cannot diagnose the build of %s %s", self.package, self.version)
            return None
        summary = f"{diagnosis.summary}; {note}" if note else diagnosis.summary
        return diagnosis._replace(summary=summary, needs=tuple(needs))

    def _build(self) -> tuple[bool, list[FileState]]:
        problem = request_problem(self.package, self.version)
        if problem:
            self._log.note(f"refusing to build: {problem}")
            return False, []
        self._mount_volume()
        self.out_dir.mkdir()
        run = self._run_pip()
        if not self._pip_succeeded(run):
            return False, []
        files = self._collect()
        if files and not self._gate_passed(files):
            return False, []
        if not files:
            self._log.note(f"pip produced no wheel of {self.package} {self.version}")
        elif self._kill_reason:
            # Killed while we inspected the wheels: what the master asked for wins.
            self._log.note(f"killed while inspecting the wheels: {self._kill_reason}")
            return False, []
        return bool(files), files

    def _mount_volume(self) -> None:
        builder = self._builder
        if not builder.volumes or builder.limits.disk is None:
            return
        try:
            self._volume = BuildVolume(self.build_dir, builder.limits.disk)
        except OSError as exc:  # out of loop devices, say: the watch still keeps the limit
            self._log.note(f"no filesystem of its own, its disk measured instead: {exc}")

    def _run_pip(self) -> RunResult:
        builder = self._builder
        interpreter = builder.interpreter
        command = builder.pip_command(self.package, self.version, self.out_dir)
        self._log.note(
            f"building {self.package} {self.version} for {interpreter.abi_tag} "
            f"({interpreter.platform_tag}) with Python {interpreter.version} "
            f"({interpreter.path}), pip {interpreter.pip_version}"
        )
        self._log.note(f"sandbox: {builder.sandbox.description}")
        self._log.note(f"timeout: {builder.timeout}")
        self._log.note(f"limits: {builder.describe_limits()}")
        epoch, why = self._source_date_epoch()
        self._log.note(f"SOURCE_DATE_EPOCH={epoch} ({why})")
        self._log.note(f"running: {shlex.join(command)}")
        env = {**builder.pip_environment(), **REPRODUCIBLE, "SOURCE_DATE_EPOCH": str(epoch)}
        return self._sandboxed(command, builder.timeout.total_seconds(), env)

    def _source_date_epoch(self) -> tuple[int, str]:
        """The index's word on the sdist's upload time, waited for only while the build is
        wanted: a kill must not wait for a slow index (the sandbox then refuses to start)."""
        answer: list[tuple[int, str]] = []
        index_url = self._builder.index_url

        def ask() -> None:
            answer.append(source_date_epoch(index_url, self.package, self.version))

        asking = threading.Thread(target=ask, name="release time", daemon=True)
        asking.start()
        deadline = time.monotonic() + release_time.TIMEOUT
        while asking.is_alive() and self._kill_reason is None and time.monotonic() < deadline:
            asking.join(0.1)
        if answer:
            return answer[0]
        return release_time.ZIP_EPOCH, "the index did not say when the sdist was uploaded"

    def _sandboxed(self, command: list[str], timeout: float, env: dict[str, str]) -> RunResult:
        builder = self._builder
        cage = builder.memory_cage() if builder.memory_cage is not None else None
        try:
            with self._lock:
                if self._kill_reason is not None:
                    return RunResult(-1, "", self._kill_reason)
                try:
                    process = self._process = builder.sandbox.start(
                        command,
                        build_dir=self.build_dir,
                        env={**builder.toolchains.env, **builder.jobs_env, **env},
                        readable=(*builder.interpreter.prefixes, *builder.toolchains.bound),
                        # Other builds' directories (left over or not yet cleaned) are none of
                        # its business.
                        hide=[builder.work_root],
                        before_exec=_limited(cage, builder.pin_cpus),
                        tmpfs_size=builder.limits.tmpfs_size,
                    )
                except OSError as exc:
                    return RunResult(-1, f"could not start {command[0]!r}: {exc}\n", None)
            try:
                run = process.communicate(
                    timeout, watch=self._disk_watch(), watch_interval=DISK_CHECK_INTERVAL
                )
            finally:
                with self._lock:
                    self._process = None
            if cage is not None and run.killed is None and cage.exceeded():
                # the kernel killed a process of the build at its cgroup's limit
                limit = builder.limits.memory or 0
                run = run._replace(killed=over_limit("memory", limit))
            return run
        finally:
            if cage is not None:
                cage.close()

    def _disk_watch(self) -> Callable[[], str | None] | None:
        limit = self._builder.limits.disk
        if limit is None or self._volume is not None:
            return None

        def over() -> str | None:
            if disk_used(self.build_dir) > limit:
                return over_limit("disk", limit)
            return None

        return over

    def _pip_succeeded(self, run: RunResult) -> bool:
        self._log.block(run.output)
        if run.killed:
            self._log.note(f"pip was killed: {run.killed}")
            return False
        self._log.note(f"pip exited with status {run.returncode}")
        limit = self._builder.limits.disk
        if run.returncode != 0 and limit is not None and self._out_of_own_space(run.output):
            self._log.note(f"the build ran out of room: {over_limit('disk', limit)}")
        return run.returncode == 0

    def _out_of_own_space(self, output: str) -> bool:
        """Whether a write failed for want of space on the build's own filesystems (its
        directory's, or the sandbox's /tmp) rather than the machine's disk."""
        if not ran_out_of_space(output):
            return False
        try:
            machine = shutil.disk_usage(self._builder.work_root)
        except OSError:
            return False
        return machine.free > MACHINE_DISK_MARGIN

    def _collect(self) -> list[FileState]:
        files = []
        for path in sorted(self.out_dir.iterdir()):
            state = self._inspect(path)
            if state is not None:
                files.append(state)
        return files

    def _inspect(self, path: Path) -> FileState | None:
        problem = not_plain_file(path) or foreign_wheel(path.name, self.package, self.version)
        if problem:
            self._log.note(f"not reporting {path.name}: {problem}")
            return None
        try:
            requires_python, pip_deps = read_metadata(path)
        except BadWheelError as exc:
            self._log.note(f"not reporting {path.name}: {exc}")
            return None
        state = file_state(path, requires_python, pip_deps | self._apt_dependencies(path))
        self._log.note(f"wheel {state.filename}: {state.filesize} bytes, sha256 {state.filehash}")
        return state

    def _gate_passed(self, files: list[FileState]) -> bool:
        """The publish gate (slave/gate.py): whether every wheel imports here."""
        started = time.monotonic()
        passed = True
        for number, state in enumerate(files):
            gate = check_wheel(
                self.out_dir / state.filename,
                self.build_dir / "gate" / str(number),
                str(self._builder.interpreter.path),
                self._gate_run,
                timeout=GATE_TIMEOUT,
            )
            for line in gate.lines:
                self._log.note(line)
            passed = passed and gate.passed
        remove_tree(self.build_dir / "gate")
        took = time.monotonic() - started
        self._log.note(f"publish gate: {'passed' if passed else 'failed'} in {took:.1f}s")
        return passed

    def _gate_run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        run = self._sandboxed(list(argv), timeout, {})
        return (-1 if run.killed else run.returncode), run.output

    def _apt_dependencies(self, wheel: Path) -> frozenset[Dependency]:
        def ldd(argv: Sequence[str]) -> str:
            # ldd may execute the file it inspects (it runs the ELF's own interpreter), and
            # these files come from the package: it runs sandboxed like the build.
            return self._sandboxed(list(argv), _SCAN_TIMEOUT, {}).output

        return apt_dependencies(wheel, self.build_dir / "scan", ldd)


def _limited(cage: MemoryCage | None, pin: Callable[[], None] | None) -> Callable[[], None] | None:
    """What a build's first process runs before it starts: its memory cage, its CPUs."""
    if cage is None and pin is None:
        return None

    def before_exec() -> None:
        if cage is not None:
            cage.before_exec()
        if pin is not None:
            pin()

    return before_exec


class _BuildLog:
    """The build's output: pip's, framed by our own lines (prefixed so they stand out)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def note(self, line: str) -> None:
        self._parts.append(f"[piwheels] {line}\n")

    def block(self, text: str) -> None:
        if text and not text.endswith("\n"):
            text += "\n"
        self._parts.append(text)

    def text(self) -> str:
        return "".join(self._parts)
