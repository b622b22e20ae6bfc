"""The words and numbers the monitor shows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from piwheels.monitor.model import human_duration, human_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "-"),
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1.0K"),
        (1536, "1.5K"),
        (5 << 30, "5.0G"),
        (3 << 40, "3.0T"),
        (5000 << 40, "5000.0T"),  # no unit past T
    ],
)
def test_sizes_are_shown_as_df_h_does(size: int | None, shown: str) -> None:
    assert human_size(size) == shown


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (None, "-"),
        (timedelta(0), "0s"),
        (timedelta(seconds=42.9), "42s"),
        (timedelta(seconds=60), "1m00s"),
        (timedelta(seconds=3725), "1h02m05s"),
        (timedelta(days=2, seconds=5), "48h00m05s"),
        (timedelta(seconds=-3), "0s"),  # the master's clock a little ahead of ours
    ],
)
def test_durations_are_shown_to_the_second(delta: timedelta | None, shown: str) -> None:
    assert human_duration(delta) == shown
