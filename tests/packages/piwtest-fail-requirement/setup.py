"""Use piwtest-helper during the wheel build, so that the build requirement is a real one.

It is imported in build_py only, which runs for a wheel but not for ``sdist``: the sdist is made
without piwtest-helper installed.
"""

from setuptools import setup
from setuptools.command.build_py import build_py


class HelpedBuildPy(build_py):
    def run(self) -> None:
        # Here, not at the top: the sdist is made without piwtest-helper.
        import piwtest_helper  # noqa: PLC0415

        print(piwtest_helper.banner("piwtest-fail-requirement"), flush=True)
        super().run()


setup(cmdclass={"build_py": HelpedBuildPy})
