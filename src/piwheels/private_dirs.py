"""Directories for one user alone: where the master's local sockets and the builder keys live.

What lies in them (a socket anyone could connect to, a secret key) is safe only if no one
else can reach it, whatever the files' own modes, which come from the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Bits of a directory's mode that let users other than its owner in.
OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_directory_problem(directory: Path) -> str | None:
    """Why *directory* is not this user's alone (None if it is), having made it, mode 700,
    where it was missing. The reason follows the directory's name in a sentence."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        return f"cannot be made: {exc}"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.geteuid():
        return f"belongs to another user (uid {info.st_uid})"
    if info.st_mode & OTHERS:
        return f"is open to other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None
