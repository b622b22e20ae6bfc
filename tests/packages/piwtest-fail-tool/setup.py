"""The extension, from a SWIG interface file: setuptools' build_ext runs ``swig`` on it.

swig runs in build_ext only, that is when a wheel is built; the sdist just lists the .i file.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("_piwtest_fail_tool", ["piwtest_fail_tool.i"])])
