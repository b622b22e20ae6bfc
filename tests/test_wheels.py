"""A wheel described one way for slaves and piw-import alike."""

from __future__ import annotations

from packaging.tags import parse_tag

from piwheels.records.builds import Dependency
from piwheels.wheels import joined_tags, pip_dependencies


def test_tags_of_one_kind_are_joined_sorted() -> None:
    assert joined_tags(parse_tag("py2.py3-none-any")) == ("py2.py3", "none", "any")
    # the order in the filename does not matter: the master compares these as strings
    assert joined_tags(parse_tag("py3.py2-none-any")) == ("py2.py3", "none", "any")
    assert joined_tags(parse_tag("cp311-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64")) == (
        "cp311",
        "abi3",
        "manylinux2014_aarch64.manylinux_2_17_aarch64",
    )
    assert joined_tags(iter(parse_tag("cp39-cp39-linux_armv7l"))) == (
        "cp39",
        "cp39",
        "linux_armv7l",
    )


def test_a_requirement_spelt_two_ways_is_one_dependency() -> None:
    assert pip_dependencies(["requests (>=2.0)", "requests>=2.0", "Requests >= 2.0 "]) == {
        Dependency("pip", "requests>=2.0"),
        Dependency("pip", "Requests>=2.0"),
    }
    assert pip_dependencies(['six; python_version < "3"', "six ;python_version<'3'"]) == {
        Dependency("pip", 'six; python_version < "3"')
    }


def test_an_unparseable_requirement_is_kept_as_written() -> None:
    assert pip_dependencies(["  not a requirement!  "]) == {Dependency("pip", "not a requirement!")}
    assert pip_dependencies([]) == frozenset()
