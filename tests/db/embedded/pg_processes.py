"""What a test of the embedded PostgreSQL checks last: that none of its processes is left."""

from __future__ import annotations

from pathlib import Path


def processes_using(path: Path) -> list[int]:
    """Live (not zombie) processes whose command line mentions *path*."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(path) in cmdline and state != "Z":
            found.append(int(proc.name))
    return found
