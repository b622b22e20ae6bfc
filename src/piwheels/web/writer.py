"""Putting files into the web output safely, and taking METADATA out of slaves' wheels.

Everything under the output directory is served while it is rewritten, so every file is written
beside its final name and renamed over it: a reader gets the old file or the new one, never
half of either. Wheels come from slaves, which are untrusted, so :func:`extract_metadata` reads
them as hostile zips.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

# Real METADATA files are a few kB, and the largest (long READMEs pasted in as the description)
# a few MB; anything past this is a wheel built to exhaust the master's memory.
MAX_METADATA_SIZE = 16 * 1024 * 1024


class WriteError(OSError):
    """A file of the web output could not be written; nothing was left behind."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.path = path
        self.cause = cause

    def __str__(self) -> str:
        return f"cannot write {str(self.path)!r}: {self.strerror}"


class MetadataError(ValueError):
    """A wheel whose METADATA cannot be taken out; the message quotes the wheel."""

    def __init__(self, wheel: Path, problem: str) -> None:
        super().__init__(f"{wheel.name!r}: {problem}")
        self.wheel = wheel
        self.problem = problem


class BadWheel(MetadataError):
    """Not a wheel at all: a bad filename, not a zip, unreadable or unsafe members."""


class NoDistInfo(MetadataError):
    """No ``<name>-<version>.dist-info/METADATA`` matching the wheel's filename."""


class AmbiguousDistInfo(MetadataError):
    """More than one .dist-info directory, or METADATA, to choose from."""


class MetadataTooLarge(MetadataError):
    """METADATA claims, or turns out, to be larger than :data:`MAX_METADATA_SIZE`."""


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write *data* to *path* so that no reader ever sees a partial file.

    Missing parent directories are made. Text is written as UTF-8; a lone surrogate (which JSON
    from PyPI can smuggle into a str) becomes U+FFFD rather than failing the whole page. On any
    failure the temporary file is removed, *path* keeps its old content, and :class:`WriteError`
    (an :class:`OSError`) names *path*.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target: a rename within one filesystem is atomic. The leading
        # dot keeps half-written files out of directory listings and mirrors' globs.
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(path, exc) from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            # Without this, a crash soon after the rename can leave an empty file under the
            # final name on filesystems that reorder metadata and data writes.
            os.fsync(file.fileno())
            # mkstemp makes 0600 files; the web server usually runs as another user.
            os.fchmod(file.fileno(), mode)
        temp.replace(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(exc, OSError):
            raise WriteError(path, exc) from exc
        raise


def write_gzip_atomic(path: Path, text: str | bytes, *, mode: int = 0o644) -> None:
    """Gzip *text* (as UTF-8) and write it atomically to *path*, which should end in ``.gz``."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    # mtime=0: the same log always gives the same bytes, so mirrors and caches see no change.
    # Level 6 is zlib's default: logs are written once and the last few % are not worth 3x time.
    write_atomic(path, gzip.compress(text, compresslevel=6, mtime=0), mode=mode)


def extract_metadata(wheel: Path) -> bytes:
    """The wheel's ``<name>-<version>.dist-info/METADATA``, byte for byte (for PEP 658).

    Installers compare a ``.metadata`` file with the wheel's own METADATA, so it is copied, not
    re-encoded. The .dist-info directory must be the only one at the top of the wheel and its
    name and version must match the filename's (as pip requires). Raises a subclass of
    :class:`MetadataError` for every kind of bad wheel and never writes anything to disk.
    """
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as exc:
        raise BadWheel(wheel, f"not a wheel filename ({exc})") from None
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = archive.infolist()
            _check_member_names(wheel, members)
            info_dir = _dist_info_dir(wheel, members, name, version)
            return _read_metadata(wheel, archive, members, f"{info_dir}/METADATA")
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise BadWheel(wheel, f"corrupt zip ({exc})") from None
    except (NotImplementedError, RuntimeError) as exc:
        # zipfile's words for an unsupported compression method and an encrypted member.
        raise BadWheel(wheel, f"unreadable zip ({exc})") from None
    except OSError as exc:
        raise BadWheel(wheel, f"cannot read ({exc.strerror or exc})") from None


def _check_member_names(wheel: Path, members: list[zipfile.ZipInfo]) -> None:
    # We never extract, but an installer will: a name that escapes the install directory marks
    # a hostile wheel, and publishing it would hand the attack to every user.
    for member in members:
        name = member.filename
        parts = PurePosixPath(name).parts
        if (
            name.startswith(("/", "\\"))
            or "\\" in name
            or "\0" in name
            or ".." in parts
            or (parts and ":" in parts[0])
        ):
            raise BadWheel(wheel, f"unsafe member name {name!r}")


def _dist_info_dir(wheel: Path, members: list[zipfile.ZipInfo], name: str, version: Version) -> str:
    found = sorted(
        {
            top
            for member in members
            if "/" in member.filename
            and (top := member.filename.split("/", 1)[0]).endswith(".dist-info")
        }
    )
    if not found:
        raise NoDistInfo(wheel, "no .dist-info directory")
    if len(found) > 1:
        # pip refuses these too; choosing one would publish metadata pip won't agree with.
        raise AmbiguousDistInfo(wheel, f"several .dist-info directories: {found!r}")
    info_dir = found[0]
    dir_name, _, dir_version = info_dir.removesuffix(".dist-info").rpartition("-")
    try:
        matches = canonicalize_name(dir_name) == name and Version(dir_version) == version
    except InvalidVersion:
        matches = False
    if not matches:
        raise NoDistInfo(wheel, f"{info_dir!r} does not match the filename's {name} {version}")
    return info_dir


def _read_metadata(
    wheel: Path, archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], member_name: str
) -> bytes:
    candidates = [member for member in members if member.filename == member_name]
    if not candidates:
        raise NoDistInfo(wheel, f"no {member_name!r}")
    if len(candidates) > 1:
        # Zip readers disagree on which duplicate wins; an installer might read the other one.
        raise AmbiguousDistInfo(wheel, f"{member_name!r} appears {len(candidates)} times")
    info = candidates[0]
    if info.file_size > MAX_METADATA_SIZE:
        raise MetadataTooLarge(
            wheel, f"{member_name!r} claims {info.file_size} bytes (limit {MAX_METADATA_SIZE})"
        )
    with archive.open(info) as file:
        # zipfile stops at the claimed size and checks the CRC at the end, so a member that
        # lies about its size fails here rather than inflating without bound.
        data = file.read(MAX_METADATA_SIZE + 1)
    if len(data) != info.file_size:
        raise BadWheel(wheel, f"{member_name!r} is {len(data)} bytes, not {info.file_size}")
    return data
