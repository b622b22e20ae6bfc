"""Write to /dev/full during the wheel build only (build_py).

Every write to /dev/full fails with ENOSPC, from the kernel itself: the error a full disk gives,
without filling one.
"""

from setuptools import setup
from setuptools.command.build_py import build_py

CHUNK = b"\0" * (1 << 20)  # larger than Python's buffer, so write() itself reaches the kernel


class FillingBuildPy(build_py):
    def run(self) -> None:
        with open("/dev/full", "wb") as generated:
            generated.write(CHUNK)
        super().run()


setup(cmdclass={"build_py": FillingBuildPy})
