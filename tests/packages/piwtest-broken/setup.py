"""Fail every wheel build, but neither the sdist nor the metadata step.

build_py runs when a wheel is built, and not for `sdist` or `dist_info`, so the index can still be
given an sdist and pip still gets as far as the build itself, where real builds fail.
"""

from setuptools import setup
from setuptools.command.build_py import build_py

MESSAGE = "piwtest-broken: this package always fails to build (deliberately, for piwheels' tests)"


class FailingBuildPy(build_py):
    def run(self) -> None:
        raise SystemExit(MESSAGE)


setup(cmdclass={"build_py": FailingBuildPy})
