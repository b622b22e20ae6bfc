"""The extension module; the rest of the metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("piwtest_cext", ["piwtest_cext.c"])])
