"""Sleep during the wheel build only (build_py), not while making the sdist or metadata."""

import time

from setuptools import setup
from setuptools.command.build_py import build_py

BUILD_SECONDS = 8


class SlowBuildPy(build_py):
    def run(self) -> None:
        print(f"piwtest-slow: sleeping {BUILD_SECONDS}s to stand for a long build", flush=True)
        time.sleep(BUILD_SECONDS)
        super().run()


setup(cmdclass={"build_py": SlowBuildPy})
