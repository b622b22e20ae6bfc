"""Make an sdist whose setup.py is written for Python 2.

Such sdists were made under Python 2, which we do not have; this setup.py, valid Python 3, makes
the sdist and puts the Python 2 setup.py below into it in its own place. Every later step, the
wheel build included, runs that one, and Python 3 refuses it with a SyntaxError.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.sdist import sdist

PYTHON2_SETUP = """\
from distutils.core import setup

print "piwtest-fail-python2: building with setup.py"

setup(py_modules=["piwtest_fail_python2"])
"""


class Python2Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir, "setup.py")
        # The release tree may hard-link the sources: replace the link, not the file it shares.
        target.unlink()
        target.write_text(PYTHON2_SETUP)


setup(cmdclass={"sdist": Python2Sdist})
