"""A build's own filesystem: as big as the disk limit and no bigger, and gone with the build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from piwheels.slave.build_volume import BuildVolume, mount_points, volumes_possible

needs_mounting = pytest.mark.skipif(os.geteuid() != 0, reason="a build's own filesystem needs root")


@needs_mounting
def test_a_build_volume_is_as_big_as_the_limit_and_no_bigger(tmp_path: Path) -> None:
    assert volumes_possible(tmp_path) is None
    build = tmp_path / "build-1"
    build.mkdir()
    volume = BuildVolume(build, 32 << 20)
    try:
        assert list(build.iterdir()) == []  # no lost+found in the build's way
        with pytest.raises(OSError, match="No space left on device"):
            (build / "big").write_bytes(b"x" * (40 << 20))
        assert volume.image.stat().st_blocks * 512 <= 40 << 20  # sparse: what was written
    finally:
        volume.release()
    assert build not in mount_points() and not volume.image.exists()
