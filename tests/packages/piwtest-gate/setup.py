"""Build libpiwgate.so in the build tree first, then the extension linked against it."""

from setuptools import Extension, setup
from setuptools._distutils.ccompiler import new_compiler
from setuptools.command.build_ext import build_ext


class WithPrivateLibrary(build_ext):
    def run(self) -> None:
        compiler = new_compiler()
        objects = compiler.compile(
            ["libpiwgate.c"], output_dir=self.build_temp, extra_preargs=["-fPIC"]
        )
        compiler.link_shared_lib(objects, "piwgate", output_dir=self.build_temp)
        # found when linking, and nowhere when the wheel is imported: no rpath
        self.library_dirs.append(self.build_temp)
        super().run()


setup(
    ext_modules=[Extension("piwtest_gate", ["piwtest_gate.c"], libraries=["piwgate"])],
    cmdclass={"build_ext": WithPrivateLibrary},
)
