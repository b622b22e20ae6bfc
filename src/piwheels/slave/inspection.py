"""What a build made: each wheel checked, measured and described for BUILT.

A wheel comes from the package's own code, so nothing in it is trusted: its name must be a plain
wheel filename of the package and version asked for, its METADATA is read with a size limit, and
its shared libraries are extracted (with a limit too) for ldd, which runs in the sandbox, to
find the Debian packages they link to.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import subprocess
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

from packaging.metadata import parse_email
from packaging.utils import (
    InvalidName,
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from piwheels.records.builds import Dependency, FileState
from piwheels.slave.sandbox import remove_tree
from piwheels.wheels import joined_tags, pip_dependencies

# Anything else could be read by pip as an option or a second requirement.
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")
_METADATA_LIMIT = 16 * 1024 * 1024  # METADATA holds the long description, never this much
_SO_LIMIT = 1024 * 1024 * 1024  # extracted for ldd; a zip bomb must not fill the disk
_CHUNK = 1024 * 1024


class BadWheelError(Exception):
    """A wheel pip produced cannot be read or lacks a dist-info METADATA."""


def request_problem(package: str, version: str) -> str | None:
    """Why *package* and *version* are unfit for a pip command line, if they are."""
    try:
        canonicalize_name(package, validate=True)
    except InvalidName:
        return f"{package!r} is not a valid project name"
    if not _VERSION_RE.fullmatch(version):
        return f"{version!r} is not a version we can ask pip for"
    return None


def not_plain_file(path: Path) -> str | None:
    """Why *path* may not be a file pip wrote, if so.

    The build could write into the output directory too: a symlink or a hard link there could
    make us hash, and then send the master, a file of the slave's instead of a wheel.
    """
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_nlink != 1:
        return "a hard link to another file"
    return None


def foreign_wheel(filename: str, package: str, version: str) -> str | None:
    """Why *filename* is not a wheel of *package* at *version*, if it is not."""
    if not filename.endswith(".whl"):
        return "not a wheel"
    try:
        name, found, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        return str(exc)
    if name != canonicalize_name(package) or not _same_version(found, version):
        return f"it is {name} {found}, not the requested {package} {version}"
    return None


def _same_version(found: Version, wanted: str) -> bool:
    try:
        return found == Version(wanted)
    except InvalidVersion:
        return False


def file_state(path: Path, requires_python: str | None, deps: frozenset[Dependency]) -> FileState:
    name, version, _, tags = parse_wheel_filename(path.name)
    py_tag, abi_tag, platform_tag = joined_tags(tags)
    return FileState(
        filename=path.name,
        filesize=path.stat().st_size,
        filehash=_sha256(path),
        package_tag=name,
        package_version_tag=str(version),
        py_version_tag=py_tag,
        abi_tag=abi_tag,
        platform_tag=platform_tag,
        dependencies=deps,
        requires_python=requires_python,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(wheel: Path) -> tuple[str | None, frozenset[Dependency]]:
    """Requires-Python and the Requires-Dist entries (as ``pip`` dependencies) of *wheel*."""
    raw, _ = parse_email(_metadata_bytes(wheel))
    return raw.get("requires_python"), pip_dependencies(raw.get("requires_dist", []))


def _metadata_bytes(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(names) != 1:
                raise BadWheelError(f"expected one .dist-info/METADATA, found {len(names)}")
            with archive.open(names[0]) as f:
                data = f.read(_METADATA_LIMIT + 1)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadWheelError(f"unreadable wheel: {exc}") from None
    if len(data) > _METADATA_LIMIT:
        raise BadWheelError(f"METADATA is larger than {_METADATA_LIMIT} bytes")
    return data


def apt_dependencies(
    wheel: Path, scan_dir: Path, ldd: Callable[[Sequence[str]], str]
) -> frozenset[Dependency]:
    """The Debian packages owning the system libraries that *wheel*'s shared objects link to.

    The shared objects are copied into *scan_dir* (emptied first, left for the caller to delete)
    and *ldd* runs ``ldd`` on them and returns its output. Libraries shipped in the wheel itself,
    or that no package owns, are left out; without dpkg the answer is empty.
    """
    if shutil.which("dpkg") is None:
        return frozenset()  # not a Debian-like system: nothing to report
    remove_tree(scan_dir)
    scan_dir.mkdir()
    libraries = _extract_libraries(wheel, scan_dir)
    if not libraries:
        return frozenset()
    own = {path.name.split("-", 1)[1] for path in libraries}
    linked = _linked_paths(ldd(["ldd", *map(str, libraries)]), inside=scan_dir, own=own)
    return frozenset(Dependency("apt", pkg) for pkg in _owning_packages(linked))


def _extract_libraries(wheel: Path, dest: Path) -> list[Path]:
    """Copy the shared objects of *wheel* into *dest*, flat, each named ``<n>-<basename>``."""
    extracted: list[Path] = []
    budget = _SO_LIMIT
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            base = PurePosixPath(info.filename).name
            if info.is_dir() or not (base.endswith(".so") or ".so." in base):
                continue
            # Never the archive's own path: a hostile name (../../x) must not choose where we write.
            target = dest / f"{len(extracted)}-{base}"
            budget -= _copy_member(archive, info, target, budget)
            extracted.append(target)
            if budget <= 0:
                break
    return extracted


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int) -> int:
    copied = 0
    with archive.open(info) as src, target.open("wb") as dst:
        while copied < limit and (chunk := src.read(min(_CHUNK, limit - copied))):
            dst.write(chunk)
            copied += len(chunk)
    return copied


def _linked_paths(ldd_output: str, *, inside: Path, own: set[str]) -> set[str]:
    """The system libraries ldd resolved, less the wheel's own (extracted or bundled) ones."""
    paths = set()
    for line in ldd_output.splitlines():
        soname, arrow, rest = line.strip().partition(" => ")
        path = (rest if arrow else soname).split(" (")[0].strip()
        if not path.startswith("/") or soname in own:
            continue
        if Path(path).is_relative_to(inside):
            continue
        paths.add(path)
    return paths


def _owning_packages(paths: Iterable[str]) -> set[str]:
    """The Debian packages that installed *paths* (architecture qualifiers dropped)."""
    candidates = sorted({alt for path in paths for alt in _path_variants(path)})
    if not candidates:
        return set()
    try:
        proc = subprocess.run(
            ["dpkg", "-S", *candidates], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return set()
    packages: set[str] = set()
    for line in proc.stdout.splitlines():
        if line.startswith("diversion by"):
            continue
        owners, sep, _ = line.partition(": ")
        if sep:
            packages.update(p.strip().split(":")[0] for p in owners.split(","))
    return packages


def _path_variants(path: str) -> set[str]:
    # With merged /usr, ldd may report /lib/... while dpkg registered /usr/lib/... (or the
    # reverse), and a symlinked name while dpkg knows the target.
    named = {path, str(Path(path).resolve())}
    return named | {
        name[len("/usr") :] if name.startswith("/usr/") else "/usr" + name for name in named
    }
