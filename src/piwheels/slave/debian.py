"""Which Debian packages would provide what a failed build lacked, from Debian's own data.

A header, a library, a pkg-config name or a program is looked up in the Contents index of the
builder's own release, through apt-file (``apt-file update`` fetches it from the builder's apt
sources), never in a table of our own: what provides ``cairo.h`` differs between releases, and
only the builder's release matters. Without that data, nothing is guessed: the caller says so.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable

from piwheels.failures import MAX_ALTERNATIVES, Want

log = logging.getLogger(__name__)

APT_FILE_TIMEOUT = 60.0  # seconds per search; a search reads ~80 MB of compressed lists


class NoDebianData(Exception):
    """apt-file, or its Contents data, is not on this builder."""


def _path_patterns(want: Want) -> str | None:
    """The regular expression (apt-file's, anchored on the path) of the files that would
    provide *want*, or None for a want no Debian package provides (a PyPI requirement)."""
    name = re.escape(want.name.lstrip("/"))
    if want.kind == "header":
        return rf"^/usr/include/(.+/)?{name}$"
    if want.kind == "library":
        return rf"^/usr/lib/([^/]+/)?lib{name}\.(so|a)$"
    if want.kind == "pkg-config":
        return rf"^/usr/(lib/([^/]+/)?|share/)pkgconfig/{name}\.pc$"
    if want.kind == "tool":
        return rf"^/(usr/)?s?bin/{name}$"
    if want.kind == "shared-library":
        return rf"^/(usr/)?lib/(.+/)?{name}$"
    return None


def providers(want: Want, *, apt_file: str | None = None) -> list[str]:
    """The Debian packages that provide *want* on this builder's release, the likeliest first:
    the file nearest its directory's top (``/usr/include/cairo/cairo.h`` before
    ``/usr/include/gtk-3.0/unix-print/.../cairo.h``), then -dev packages. Empty when no package
    does. Raises :class:`NoDebianData` when apt-file or its data is missing."""
    pattern = _path_patterns(want)
    if pattern is None:
        return []
    program = apt_file or shutil.which("apt-file")
    if program is None:
        raise NoDebianData("apt-file is not installed")
    try:
        run = subprocess.run(
            [program, "search", "--regexp", pattern],
            capture_output=True,
            text=True,
            timeout=APT_FILE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NoDebianData(f"apt-file failed: {exc}") from None
    # 1: nothing found; anything else but 0 is apt-file's own trouble (no Contents data)
    if run.returncode not in (0, 1):
        raise NoDebianData(f"apt-file: {(run.stderr or run.stdout).strip()[:200]}")
    if "apt-file update" in run.stderr:
        raise NoDebianData("apt-file has no Contents data (run apt-file update)")
    return _ranked(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)


def _ranked(found: Iterable[list[str]]) -> list[str]:
    best: dict[str, tuple[int, int]] = {}
    for package, path in found:
        rank = (path.count("/"), 0 if package.endswith("-dev") else 1)
        if package not in best or rank < best[package]:
            best[package] = rank
    if not best:
        return []
    top = min(best.values())[0]
    # only the packages whose file is as shallow as the shallowest: the others carry a copy
    return sorted((p for p, r in best.items() if r[0] == top), key=lambda p: (best[p], p))[
        :MAX_ALTERNATIVES
    ]


def needs_of(wants: Iterable[Want], *, apt_file: str | None = None) -> tuple[list[str], str]:
    """For each of *wants* Debian provides, its alternatives (``"a | b"``), and a note for
    the summary when some could not be looked up or no package provides them ("" if none)."""
    needs: list[str] = []
    unknown: list[str] = []
    for want in wants:
        if _path_patterns(want) is None:
            continue
        try:
            found = providers(want, apt_file=apt_file)
        except NoDebianData as exc:
            log.warning("cannot look up the Debian package of %s: %s", want.name, exc)
            return needs, f"the builder has no Debian package data ({exc})"
        alternatives = " | ".join(found)
        if found and alternatives not in needs:  # two names a package provides both of
            needs.append(alternatives)
        else:
            unknown.append(want.name)
    note = f"no Debian package provides {', '.join(unknown)}" if unknown else ""
    return needs, note
