"""How a wheel is described on the wire, one way for slaves and piw-import alike.

The master checks the tags a wheel is reported with against its filename, and merges
dependencies across builds, so both describers must spell them identically.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag

from piwheels.records.builds import Dependency


def joined_tags(tags: Iterable[Tag]) -> tuple[str, str, str]:
    """Python, ABI and platform tags, several of a kind (py2.py3) joined with dots, sorted."""
    tags = list(tags)
    return (
        ".".join(sorted({t.interpreter for t in tags})),
        ".".join(sorted({t.abi for t in tags})),
        ".".join(sorted({t.platform for t in tags})),
    )


def pip_dependencies(requires_dist: Iterable[str]) -> frozenset[Dependency]:
    """Requires-Dist entries as ``pip`` dependencies, normalised so one requirement spelt two
    ways is one dependency (an unparseable one is kept as written)."""
    return frozenset(Dependency("pip", _requirement(text)) for text in requires_dist)


def _requirement(text: str) -> str:
    try:
        return str(Requirement(text))
    except InvalidRequirement:
        return text.strip()
