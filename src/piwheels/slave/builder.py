"""How this slave builds: one interpreter, one index, a sandbox and limits, pip's command line.

:meth:`Builder.start` returns a :class:`~piwheels.slave.build.Build` running in a thread of its
own, so that the slave's protocol loop keeps answering the master (BUSY) meanwhile. The build
itself is ``pip wheel`` run in a :class:`~piwheels.slave.sandbox.Sandbox`, with the command
line and environment made here.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from piwheels.slave.build import Build
from piwheels.slave.build_volume import volumes_possible
from piwheels.slave.interpreter import Interpreter
from piwheels.slave.limits import DISK_CHECK_INTERVAL, Limits, cpu_pinning, memory_cages
from piwheels.slave.sandbox import Sandbox, remove_tree
from piwheels.slave.toolchains import Toolchains
from piwheels.slave.work_root import BUILD_PREFIX

__all__ = ["Builder"]


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
