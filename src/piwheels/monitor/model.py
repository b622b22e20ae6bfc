"""The words and numbers the monitor shows (what the status queue carries: records.status)."""

from __future__ import annotations

from datetime import timedelta


def human_size(size: int | None) -> str:
    """A byte count the way ``df -h`` shows it.

    >>> human_size(5 << 30), human_size(1536), human_size(None)
    ('5.0G', '1.5K', '-')
    """
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(delta: timedelta | None) -> str:
    """A duration to the second, hours and minutes shown only when there are some.

    Negative durations (the master's clock a little ahead of ours) show as zero.

    >>> human_duration(timedelta(seconds=3725)), human_duration(timedelta(seconds=42))
    ('1h02m05s', '42s')
    """
    if delta is None:
        return "-"
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
