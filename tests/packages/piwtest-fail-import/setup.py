"""Compile against numpy's headers, imported in build_ext as many projects do.

The import waits for build_ext to run (a wheel build) so that the sdist can be made without numpy
(``sdist`` finalizes build_ext to list the sources, so not in finalize_options); the project forgot
numpy in [build-system] requires, so the wheel build cannot import it.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class NumpyBuildExt(build_ext):
    def build_extensions(self) -> None:
        # Here, not at the top: the sdist is made without numpy.
        import numpy as np  # noqa: PLC0415

        for ext in self.extensions:
            ext.include_dirs.append(np.get_include())
        super().build_extensions()


setup(
    ext_modules=[Extension("piwtest_fail_import", ["piwtest_fail_import.c"])],
    cmdclass={"build_ext": NumpyBuildExt},
)
