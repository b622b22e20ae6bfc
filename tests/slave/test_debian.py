"""What provides a failed build's missing header, library, pkg-config name or program, looked up
in the Contents index of this machine's Debian release with the real apt-file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from piwheels.failures import Want
from piwheels.slave.debian import NoDebianData, needs_of, providers


def _has_contents() -> bool:
    if shutil.which("apt-file") is None:
        return False
    run = subprocess.run(
        ["apt-file", "search", "-l", "/usr/bin/dpkg"], capture_output=True, text=True, check=False
    )
    return run.returncode == 0 and "dpkg" in run.stdout


needs_apt_file = pytest.mark.skipif(
    not _has_contents(), reason="apt-file or its Contents data is not on this machine"
)


@needs_apt_file
@pytest.mark.parametrize(
    ("want", "package"),
    [
        (Want("header", "portaudio.h"), "portaudio19-dev"),
        (Want("library", "portaudio"), "portaudio19-dev"),
        (Want("pkg-config", "portaudio-2.0"), "portaudio19-dev"),
        (Want("tool", "swig"), "swig"),
        # the header at the top of its directory wins over the copies other -dev packages carry
        (Want("header", "cairo.h"), "libcairo2-dev"),
    ],
)
def test_the_package_that_provides_it_comes_first(want: Want, package: str) -> None:
    assert providers(want)[0] == package


@needs_apt_file
def test_needs_are_alternatives_and_say_what_nothing_provides() -> None:
    needs, note = needs_of(
        [
            Want("header", "portaudio.h"),
            Want("header", "piwtest_no_such_header.h"),
            Want("requirement", "Cython>=3"),  # PyPI's, not Debian's: not looked up
        ]
    )
    assert needs == ["portaudio19-dev"]
    assert note == "no Debian package provides piwtest_no_such_header.h"


def test_without_apt_file_nothing_is_guessed(tmp_path: Path) -> None:
    missing = tmp_path / "apt-file"  # not there
    with pytest.raises(NoDebianData):
        providers(Want("header", "portaudio.h"), apt_file=str(missing))
    needs, note = needs_of([Want("header", "portaudio.h")], apt_file=str(missing))
    assert needs == []
    assert note.startswith("the builder has no Debian package data")
    # a PyPI requirement never needs apt-file
    assert providers(Want("requirement", "Cython>=3"), apt_file=str(missing)) == []


@needs_apt_file
def test_a_package_providing_two_wants_is_needed_once() -> None:
    # mysqlclient tries the pkg-config names mariadb and libmariadb: both libmariadb-dev's
    needs, _ = needs_of([Want("pkg-config", "libmariadb"), Want("header", "mariadb/mysql.h")])
    assert needs == ["libmariadb-dev"]
