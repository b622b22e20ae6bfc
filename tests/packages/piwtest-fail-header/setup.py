"""The extension module; the rest of the metadata is in pyproject.toml.

The sdist only lists the C source; the compiler first runs when a wheel is built.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("piwtest_fail_header", ["piwtest_fail_header.c"])])
