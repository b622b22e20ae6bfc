"""The compilers and tools a build may use though they live where the sandbox hides things.

The sandbox hides every home directory, so a toolchain installed under one (rustup's ``cargo``
and ``rustc`` in ``~/.cargo/bin``, pyenv's shims, ``~/.local/bin``) was on the slave's PATH but
invisible to its builds: against real PyPI, 14 of 20 failed builds were Rust projects that could
not find the compiler the machine had. Each such PATH entry is bound read-only into the sandbox
instead, with what its tool needs to find the rest of itself (rustup its toolchains, pyenv its
root), and ``--toolchain DIR`` binds more. Never bound: anything of the slave's own (its work
directory, where other builds live) and anything outside the hidden places (already visible).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple


class Toolchains(NamedTuple):
    """What the sandbox shows of the hidden places: read-only, and how the tools find it."""

    bound: tuple[Path, ...]  # bound read-only into every build's sandbox
    env: Mapping[str, str]  # variables that point tools at what was bound
    hidden: tuple[Path, ...]  # entries of the slave's PATH builds still cannot see

    def describe(self) -> str:
        """One line for the slave's log."""
        bound = ", ".join(map(str, self.bound)) or "nothing"
        hidden = ", ".join(map(str, self.hidden)) or "nothing"
        return f"toolchains bound read-only into builds: {bound}; PATH hidden from builds: {hidden}"


def find_toolchains(
    *,
    path: str | None = None,
    hidden: Iterable[Path],
    private: Iterable[Path] = (),
    extra: Iterable[Path] = (),
    home: Path | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Toolchains:
    """The toolchains on *path* (the slave's PATH, from *environ*) that lie in *hidden* places,
    and the *extra* directories an operator named; nothing inside *private* (the slave's own
    directories)."""
    home = home or Path.home()
    hidden = [p.resolve() for p in hidden]
    private = [p.resolve() for p in private]
    bound: dict[Path, None] = {}
    env: dict[str, str] = {}
    still_hidden: dict[Path, None] = {}
    entries = (path if path is not None else environ.get("PATH", "")).split(os.pathsep)
    for entry in entries:
        if not entry or not Path(entry).is_absolute():
            continue  # a relative entry means the build's own directory: nothing to bind
        directory = Path(entry).resolve()
        if not directory.is_dir() or not _within(directory, hidden):
            continue
        if _within(directory, private):
            still_hidden[directory] = None
            continue
        for needed, variables in _what_it_needs(directory, home, environ):
            bound[needed] = None
            env.update(variables)
    for named in extra:
        directory = named.resolve()
        if directory.is_dir() and not _within(directory, private):
            bound[directory] = None
    return Toolchains(tuple(bound), env, tuple(still_hidden))


def _what_it_needs(
    directory: Path, home: Path, environ: Mapping[str, str]
) -> list[tuple[Path, dict[str, str]]]:
    """The directories a tool in *directory* needs visible, and the variables that find them.

    rustup's proxies (``cargo``, ``rustc`` in ``~/.cargo/bin``) read their toolchains from
    RUSTUP_HOME, by default under HOME, which is the build's own; cargo's downloads (CARGO_HOME)
    stay in the build's HOME, writable and thrown away. pyenv's shims run pyenv from PYENV_ROOT.
    """
    needs: list[tuple[Path, dict[str, str]]] = [(directory, {})]
    rustup = Path(environ.get("RUSTUP_HOME", home / ".rustup")).resolve()
    if (directory / "rustup").exists() and rustup.is_dir():
        needs.append((rustup, {"RUSTUP_HOME": str(rustup)}))
    pyenv = Path(environ.get("PYENV_ROOT", home / ".pyenv")).resolve()
    if _within(directory, [pyenv]) and pyenv.is_dir():
        needs = [(pyenv, {"PYENV_ROOT": str(pyenv)})]
    return needs


def _within(path: Path, places: Iterable[Path]) -> bool:
    return any(path == place or path.is_relative_to(place) for place in places)
