"""Build one version of one package into wheels, and describe each wheel for BUILT.

:meth:`Builder.start` returns a :class:`Build` running in a thread of its own, so that the slave's
protocol loop keeps answering the master (BUSY) meanwhile. The build itself is ``pip wheel`` run
in a :class:`~piwheels.slave.sandbox.Sandbox`; every line of its log ends up in the BUILT message.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from packaging.utils import (
    canonicalize_name,
)
from packaging.version import InvalidVersion, Version

from piwheels.failures import Diagnosis, classify, over_limit, ran_out_of_space
from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.slave import release_time
from piwheels.slave.build_volume import BuildVolume, volumes_possible
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
from piwheels.slave.interpreter import Interpreter
from piwheels.slave.limits import (
    DISK_CHECK_INTERVAL,
    Limits,
    MemoryCage,
    cpu_pinning,
    disk_used,
    memory_cages,
)
from piwheels.slave.release_time import source_date_epoch
from piwheels.slave.sandbox import RunResult, Sandbox, SandboxedProcess, remove_tree
from piwheels.slave.toolchains import Toolchains
from piwheels.slave.work_root import BUILD_PREFIX

__all__ = ["Build", "Builder"]

_SCAN_TIMEOUT = 120.0  # for ldd over a wheel's libraries
# Of a failed build's wants, at most this many are looked up in Debian's data (~1.5 s each)
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

log = logging.getLogger(__name__)


class Builder:
    """Builds packages with one interpreter, from one index, into directories under *work_root*."""

    def __init__(
        self,
        interpreter: Interpreter,
        index_url: str,
        timeout: timedelta,
        work_root: Path,
        sandbox: Sandbox,
        toolchains: Toolchains | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.interpreter = interpreter
        self.index_url = index_url
        self.timeout = timeout
        self.work_root = work_root
        self.sandbox = sandbox
        self.toolchains = toolchains or Toolchains((), {}, ())
        self.limits = limits or Limits()
        self.memory_cage, self.memory_how = memory_cages(self.limits.memory)
        self.pin_cpus, self.jobs_env = cpu_pinning(self.limits.cpus)
        self.volumes, self.disk_how = self._disk_limit_by()

    def _disk_limit_by(self) -> tuple[bool, str]:
        """Whether builds get filesystems of their own, and how their disk is limited (for the
        log)."""
        if self.limits.disk is None:
            return False, "no disk limit"
        self.work_root.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=self.work_root))
        try:
            trouble = volumes_possible(probe)
        finally:
            remove_tree(probe)
        if trouble is None:
            return True, "a filesystem of its own"
        return False, f"measuring it every {DISK_CHECK_INTERVAL:g} s (no filesystem: {trouble})"

    def describe_limits(self) -> str:
        """The limits of each build and how they are kept, for the logs."""
        hows = [
            f"{kind} by {how}"
            for kind, limit, how in (
                ("memory", self.limits.memory, self.memory_how),
                ("disk", self.limits.disk, self.disk_how),
            )
            if limit is not None
        ]
        return self.limits.describe() + (f" ({', '.join(hows)})" if hows else "")

    def start(self, package: str, version: str) -> Build:
        """Start building *package* at *version* in the background and return at once."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        build_dir = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=self.work_root))
        build = Build(self, package, version, build_dir)
        build.start()
        return build

    def pip_command(self, package: str, version: str, out_dir: Path) -> list[str]:
        """The ``pip wheel`` command line for one build."""
        pip = self.interpreter.pip_version
        return [
            str(self.interpreter.path),
            "-m",
            "pip",
            "wheel",
            # Ignore PIP_* variables and the user's pip config: only this command line counts.
            "--isolated",
            # Its dependencies are builds of their own; here we want this project's wheel only.
            "--no-deps",
            # A cache shared between builds is a place where one build can poison the next.
            "--no-cache-dir",
            # Build from the sdist even when the index has a wheel of this version: that build is
            # the job. Build dependencies (setuptools, ...) may still come as wheels.
            f"--no-binary={canonicalize_name(package)}",
            # The master's choice of index (ACK's pypi_url), nothing else.
            "--index-url",
            self.index_url,
            # It would ask the index about pip itself: noise in the log, traffic for nothing.
            "--disable-pip-version-check",
            # Progress bars would fill the log with terminal control codes.
            "--progress-bar",
            "off",
            "-w",
            str(out_dir),
            *_pep517_flag(pip),
            f"{package}=={version}",
        ]

    def pip_environment(self) -> dict[str, str]:
        """Variables for pip on top of the sandbox's clean environment (HOME, TMPDIR, PATH)."""
        return {
            # --isolated still reads the global (/etc/xdg/pip) and site config files; naming
            # the null device as the config file is pip's way of reading none at all. It also
            # reaches the inner pip that installs build dependencies, which lacks --isolated.
            "PIP_CONFIG_FILE": "/dev/null",
            # The inner pip does read the environment: same reason as the flag above.
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }


def _pep517_flag(pip_version: str) -> list[str]:
    # Before 25.3, pip builds a project without pyproject.toml by running its setup.py with
    # whatever setuptools the interpreter has, outside build isolation. Forcing PEP 517 gives
    # every build a fresh backend from the index instead. pip < 19 lacks the flag; 25.3+ has
    # no other way.
    try:
        version = Version(pip_version)
    except InvalidVersion:
        return []
    return ["--use-pep517"] if Version("19") <= version < Version("25.3") else []


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
