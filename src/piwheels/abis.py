"""The ABI rules of the build queue (seed 000), in one place.

ABIs are ordered by the Python version they belong to, never as text (``cp39 < cp310``). A
version is built on the lowest ABI first; a ``none`` wheel serves every ABI, an ``abi3`` wheel
tagged ``cp3X`` every ABI from ``cp3X`` up; an ABI-specific wheel or a failure moves the version
on to the next ABI. This module holds the Python half of those rules; the SQL half is
``queue_version`` in the schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

# CPython ABI tags: "cp311", "cp37m", "cp27mu", "cp313t" (free-threaded). packaging has no
# parser from an ABI tag to a version, so this is the one pattern we keep ourselves.
CPYTHON_ABI = re.compile(r"^cp(?P<major>\d)(?P<minor>\d{1,2})(?P<flags>[dmut]*)$")
GENERIC_PYTHON = re.compile(r"^py(?P<major>\d)(?P<minor>\d{0,2})$")
CPYTHON_INTERPRETER = re.compile(r"^cp(?P<major>\d)(?P<minor>\d{1,2})$")
# How many patch releases of a minor version to try against a Requires-Python specifier.
PATCH_RELEASES = 40


class BuildABI(NamedTuple):
    abi_tag: str
    python_order: int  # major * 100 + minor
    python_version: str  # "3.11"


class UnknownABI(ValueError):
    """An ABI tag the farm cannot order (not a CPython ABI)."""


def parse_abi(abi_tag: str) -> BuildABI:
    """Order an ABI tag by its Python version.

    >>> parse_abi("cp311")
    BuildABI(abi_tag='cp311', python_order=311, python_version='3.11')
    """
    match = CPYTHON_ABI.match(abi_tag)
    if not match:
        raise UnknownABI(f"not a CPython ABI tag: {abi_tag!r}")
    major, minor = int(match["major"]), int(match["minor"])
    return BuildABI(abi_tag, major * 100 + minor, f"{major}.{minor}")


def sorted_abis(abi_tags: Iterable[str]) -> list[BuildABI]:
    return sorted({parse_abi(tag) for tag in abi_tags}, key=lambda abi: abi.python_order)


def covers_from(filenames: Iterable[str]) -> int | None:
    """The lowest python_order whose ABIs these wheels serve beyond the one built on.

    A ``py3-none-any`` wheel serves every Python 3 (300); ``cp39-abi3`` serves 3.9 and up (309);
    an ABI-specific wheel serves only its own ABI (None).
    """
    lowest: int | None = None
    for filename in filenames:
        try:
            _, _, _, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        for tag in tags:
            order = _tag_covers_from(tag.interpreter, tag.abi)
            if order is not None and (lowest is None or order < lowest):
                lowest = order
    return lowest


def _tag_covers_from(interpreter: str, abi: str) -> int | None:
    if abi == "none":
        match = GENERIC_PYTHON.match(interpreter)
    elif abi == "abi3":
        match = CPYTHON_INTERPRETER.match(interpreter)
    else:
        return None
    # Only Python 3 tags: a py2 wheel serves no Python 3 ABI, though 200 < 309.
    if match is None or match["major"] != "3":
        return None
    return 300 + int(match["minor"] or 0)


@lru_cache(maxsize=65536)
def excluded_by_requires_python(requires_python: str | None, python_version: str) -> str | None:
    """Why Requires-Python rules out every release of *python_version* ("3.11"), or None.

    An invalid specifier excludes nothing: pip ignores it too.
    """
    if not requires_python or not requires_python.strip():
        return None
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return None
    candidates = [f"{python_version}.{patch}" for patch in range(PATCH_RELEASES)]
    if any(spec.contains(candidate, prereleases=True) for candidate in candidates):
        return None
    return f"Requires-Python {requires_python!r} excludes Python {python_version}"


def abi_skips(requires_python: str | None, abis: Iterable[BuildABI]) -> list[tuple[str, str]]:
    """``(abi_tag, reason)`` for each ABI a version's Requires-Python rules out."""
    skips = []
    for abi in abis:
        reason = excluded_by_requires_python(requires_python, abi.python_version)
        if reason:
            skips.append((abi.abi_tag, reason))
    return skips
