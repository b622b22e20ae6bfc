"""Where a build's log lives in the output directory."""

from __future__ import annotations

from collections import Counter

import pytest

from piwheels.web.layout import log_path


@pytest.mark.parametrize(
    ("build_id", "path"),
    [
        (1, "logs/0000/0000/1.txt.gz"),
        (999, "logs/0000/0000/999.txt.gz"),
        (1000, "logs/0000/0001/1000.txt.gz"),
        (1234567, "logs/0001/0234/1234567.txt.gz"),
        (9_999_999_999, "logs/9999/0999/9999999999.txt.gz"),
        (12_345_678_901, "logs/12345/0678/12345678901.txt.gz"),
    ],
)
def test_a_log_is_two_directories_down(build_id: int, path: str) -> None:
    assert log_path(build_id) == path


def test_no_directory_holds_more_than_a_thousand_entries() -> None:
    # across a million's boundary: a thousand logs a folder, a thousand folders a parent
    paths = [log_path(build_id).split("/") for build_id in range(998_000, 1_003_000)]
    logs = Counter(tuple(path[:3]) for path in paths)
    assert max(logs.values()) == 1000
    assert {path[1] for path in paths} == {"0000", "0001"}
    assert log_path(999_999).split("/")[2] == "0999"  # the last folder of the first parent
