"""Exceed one limit in build_py, chosen by the version: 1.0 memory, 2.0 disk (its TMPDIR),
3.0 time, 5.0 disk (/tmp, named outright as some tools do).

The version (not an environment variable) chooses, since a build's environment is the slave's.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def take_memory() -> None:
    # touched page by page, so that it is really used, not only reserved
    hoard = []
    while True:
        block = bytearray(64 << 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        hoard.append(block)


def take_disk(where: str) -> None:
    chunk = b"x" * (8 << 20)
    with (Path(where) / "hog.bin").open("wb") as out:
        while True:
            out.write(chunk)
            out.flush()
            time.sleep(0.05)


def take_time() -> None:
    # a child that ignores SIGTERM, and outlives its parent unless the whole tree is killed
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"
    subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)


class Hog(build_py):
    def run(self) -> None:
        version = self.distribution.get_version()
        hogs = {
            "1.0": take_memory,
            "2.0": lambda: take_disk(os.environ.get("TMPDIR", ".")),
            "3.0": take_time,
            "5.0": lambda: take_disk("/tmp"),
        }
        hogs.get(version, lambda: None)()
        super().run()


setup(cmdclass={"build_py": Hog})
