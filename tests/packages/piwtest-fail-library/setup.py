"""The extension module, linked to libportaudio; the rest of the metadata is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("piwtest_fail_library", ["piwtest_fail_library.c"], libraries=["portaudio"])
    ]
)
