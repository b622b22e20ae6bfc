"""Download a data file during the wheel build only (build_py), as some projects do.

The host is under .invalid, a name reserved never to resolve (RFC 2606), so the download fails
whatever network the build has, and quickly.
"""

import urllib.request

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_URL = "https://files.example.invalid/data.tar.gz"


class DownloadingBuildPy(build_py):
    def run(self) -> None:
        with urllib.request.urlopen(DATA_URL, timeout=30) as response:
            response.read()
        super().run()


setup(cmdclass={"build_py": DownloadingBuildPy})
