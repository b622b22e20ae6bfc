"""piwheels.pypi.answers: the diff of serials."""

from __future__ import annotations

from piwheels.pypi.answers import ProjectSerial, diff_serials


def test_diff_serials() -> None:
    projects = {
        "a": ProjectSerial("A", "a", 5),
        "b": ProjectSerial("b", "b", 3),
        "c": ProjectSerial("c", "c", 9),
        "d": ProjectSerial("d", "d", 1),
    }
    # b's lower serial means our record is wrong: fetch it again rather than trust it.
    changed, removed = diff_serials({"a": 5, "b": 4, "d": 0, "gone": 2, "also-gone": 7}, projects)
    assert [entry.canonical_name for entry in changed] == ["d", "b", "c"]
    assert removed == ["also-gone", "gone"]
