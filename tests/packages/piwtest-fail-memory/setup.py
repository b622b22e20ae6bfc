"""Ask for more memory than any machine has, during the wheel build only (build_py).

An exabyte is refused by malloc at once, whatever the overcommit policy, so Python raises a real
MemoryError without the machine ever being short of memory.
"""

from setuptools import setup
from setuptools.command.build_py import build_py


class GreedyBuildPy(build_py):
    def run(self) -> None:
        table = bytearray(1 << 60)  # stands for a build step that needs far too much memory
        del table
        super().run()


setup(cmdclass={"build_py": GreedyBuildPy})
