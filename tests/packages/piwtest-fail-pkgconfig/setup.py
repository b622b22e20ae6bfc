"""Take portaudio's compiler and linker flags from pkg-config, as wrappers of C libraries do.

pkg-config runs in build_ext only, that is when a wheel is built: neither the sdist nor the
metadata step compiles anything, so the index can still be given an sdist.
"""

import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PKG_CONFIG_NAME = "portaudio-2.0"


class PkgConfigBuildExt(build_ext):
    def build_extensions(self) -> None:
        # pkg-config prints why it failed on stderr, which pip shows in the log; check_output
        # then raises, as in most setup.py files that call it.
        flags = subprocess.check_output(
            ["pkg-config", "--cflags", "--libs", PKG_CONFIG_NAME], text=True
        ).split()
        for ext in self.extensions:
            ext.include_dirs += [flag[2:] for flag in flags if flag.startswith("-I")]
            ext.library_dirs += [flag[2:] for flag in flags if flag.startswith("-L")]
            ext.libraries += [flag[2:] for flag in flags if flag.startswith("-l")]
        super().build_extensions()


setup(
    ext_modules=[Extension("piwtest_fail_pkgconfig", ["piwtest_fail_pkgconfig.c"])],
    cmdclass={"build_ext": PkgConfigBuildExt},
)
