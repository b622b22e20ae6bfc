"""The Python half of the ABI rules (piwheels.abis)."""

from __future__ import annotations

import pytest

from piwheels.abis import (
    UnknownABI,
    abi_skips,
    covers_from,
    excluded_by_requires_python,
    parse_abi,
    sorted_abis,
)


def test_abis_sort_by_python_version() -> None:
    assert [a.abi_tag for a in sorted_abis(["cp310", "cp39", "cp313", "cp37m"])] == [
        "cp37m",
        "cp39",
        "cp310",
        "cp313",
    ]


@pytest.mark.parametrize("tag", ["abi3", "none", "pp73", "cp3", "cp311; rm -rf"])
def test_unknown_abis_are_refused(tag: str) -> None:
    with pytest.raises(UnknownABI, match="not a CPython ABI tag"):
        parse_abi(tag)


@pytest.mark.parametrize(
    ("filenames", "expected"),
    [
        (["a-1.0-py3-none-any.whl"], 300),
        (["a-1.0-py2.py3-none-any.whl"], 300),
        (["a-1.0-py2-none-any.whl"], None),
        (["a-1.0-cp39-abi3-linux_x86_64.whl"], 309),
        (["a-1.0-cp311-cp311-linux_x86_64.whl"], None),
        (["a-1.0-cp311-none-linux_x86_64.whl"], None),
        (["a-1.0-cp311-cp311-linux_x86_64.whl", "a-1.0-cp39-abi3-linux_x86_64.whl"], 309),
        (["not a wheel"], None),
        ([], None),
    ],
)
def test_covers_from(filenames: list[str], expected: int | None) -> None:
    assert covers_from(filenames) == expected


@pytest.mark.parametrize(
    ("spec", "python", "excluded"),
    [
        (None, "3.9", False),
        ("", "3.9", False),
        (">=3.11", "3.9", True),
        (">=3.11", "3.11", False),
        (">3.11", "3.11", False),  # 3.11.1 and later satisfy it
        ("==3.11.2", "3.11", False),
        ("!=3.11.*", "3.11", True),
        ("~=3.9", "3.13", False),
        ("<3", "3.9", True),
        ("not a specifier", "3.9", False),  # pip ignores an invalid one too
    ],
)
def test_requires_python(spec: str | None, python: str, excluded: bool) -> None:
    assert (excluded_by_requires_python(spec, python) is not None) == excluded


def test_abi_skips_name_the_reason() -> None:
    assert abi_skips(">=3.10", sorted_abis(["cp39", "cp311"])) == [
        ("cp39", "Requires-Python '>=3.10' excludes Python 3.9"),
    ]
