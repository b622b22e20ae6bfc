"""piwheels.web.writer: atomic writes that leave nothing behind, and METADATA out of hostile wheels.

The wheels are real zips made here with zipfile, one per way a slave could get a wheel wrong.
Failures are real too: a parent that is a file, a target that is a directory, a file-size limit
(RLIMIT_FSIZE) standing in for a full disk.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zipfile
from pathlib import Path

import pytest

from piwheels.web.writer import (
    MAX_METADATA_SIZE,
    AmbiguousDistInfo,
    BadWheel,
    MetadataError,
    MetadataTooLarge,
    NoDistInfo,
    WriteError,
    extract_metadata,
    write_atomic,
    write_gzip_atomic,
)

WHEEL = "foo_bar-1.0-cp311-cp311-linux_armv7l.whl"
# CRLF, a non-UTF-8 byte and no final newline: anything re-encoded or re-wrapped would differ.
METADATA = b"Metadata-Version: 2.1\r\nName: Foo.Bar\r\nVersion: 1.0\r\nSummary: caf\xe9"


def leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


# -- write_atomic ---------------------------------------------------------------------------


def test_writes_bytes_and_text_with_the_mode(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_atomic(tmp_path / "b.html", "caf\u00e9 <b>", mode=0o600)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.html").read_bytes() == "caf\u00e9 <b>".encode()
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.html").stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_replaces_and_makes_parents(tmp_path: Path) -> None:
    target = tmp_path / "project" / "foo" / "json" / "index.json"
    write_atomic(target, "old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert leftovers(target.parent) == []


def test_a_lone_surrogate_does_not_fail_the_page(tmp_path: Path) -> None:
    # json.loads("\"\\ud800\"") gives such a str: PyPI data can carry one.
    write_atomic(tmp_path / "page.html", "before \ud800 after")
    assert (tmp_path / "page.html").read_text() == "before ? after"


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "simple").write_text("not a directory")
    target = tmp_path / "simple" / "foo" / "index.html"
    with pytest.raises(WriteError) as failure:
        write_atomic(target, "page")
    assert isinstance(failure.value, OSError)
    assert str(target) in str(failure.value)
    assert leftovers(tmp_path) == []


def test_target_is_a_directory(tmp_path: Path) -> None:
    # The temporary file is written in full before the rename fails: it must still go.
    (tmp_path / "index.html").mkdir()
    with pytest.raises(WriteError, match=r"index\.html"):
        write_atomic(tmp_path / "index.html", "x" * 100_000)
    assert leftovers(tmp_path) == []
    assert (tmp_path / "index.html").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    try:
        with pytest.raises(WriteError, match=r"ro/page\.html"):
            write_atomic(directory / "page.html", "page")
    finally:
        directory.chmod(0o755)
    assert list(directory.iterdir()) == []


def test_disk_full_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    # A file-size limit fails the write part-way (EFBIG), as a full disk does (ENOSPC), after
    # the temporary file exists. In a child process: the limit must not touch pytest's own files.
    target = tmp_path / "index.json"
    target.write_text("old and whole")
    script = f"""
import resource, signal, sys
from pathlib import Path
from piwheels.web.writer import WriteError, write_atomic
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_atomic(Path({str(target)!r}), b"x" * 1_000_000)
except WriteError as exc:
    print(exc)
    sys.exit(3)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 3, result.stderr
    assert "index.json" in result.stdout
    assert "File too large" in result.stdout
    assert target.read_text() == "old and whole"
    assert leftovers(tmp_path) == []


def test_readers_never_see_half_a_file(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    versions = [b"a" * 2_000_000, b"b" * 3_000_000]
    write_atomic(target, versions[0])
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            assert data in versions
            seen.add(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for turn in range(30):
            write_atomic(target, versions[turn % 2])
    finally:
        stop.set()
        reader.join()
    assert seen  # the reader read at least once, and every read was whole
    assert leftovers(tmp_path) == []


def test_gzip_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    text = "line one\nline \u00e9\n" * 1000
    write_gzip_atomic(tmp_path / "1.txt.gz", text)
    first = (tmp_path / "1.txt.gz").read_bytes()
    write_gzip_atomic(tmp_path / "1.txt.gz", text)
    assert (tmp_path / "1.txt.gz").read_bytes() == first  # no timestamp inside
    assert gzip.decompress(first).decode() == text
    assert len(first) < len(text) // 10


# -- extract_metadata ----------------------------------------------------------------------


def make_wheel(
    directory: Path, members: dict[str, bytes], filename: str = WHEEL, *, stored: bool = False
) -> Path:
    path = directory / filename
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of duplicate names, which we want
        with zipfile.ZipFile(path, "w", compression) as archive:
            for name, data in members.items():
                archive.writestr(zipfile.ZipInfo(name.split("#")[0]), data, compression)
    return path


def good_members(info: str = "foo_bar-1.0.dist-info") -> dict[str, bytes]:
    return {
        "foo_bar/__init__.py": b"",
        f"{info}/METADATA": METADATA,
        f"{info}/WHEEL": b"Wheel-Version: 1.0\n",
        f"{info}/RECORD": b"",
    }


def test_metadata_byte_for_byte(tmp_path: Path) -> None:
    assert extract_metadata(make_wheel(tmp_path, good_members())) == METADATA


@pytest.mark.parametrize(
    "info", ["Foo_Bar-1.0.dist-info", "foo.bar-1.0.dist-info", "foo_bar-1.0.0.dist-info"]
)
def test_dist_info_matched_by_normalized_name_and_version(tmp_path: Path, info: str) -> None:
    assert extract_metadata(make_wheel(tmp_path, good_members(info))) == METADATA


def test_no_dist_info(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {"foo_bar/__init__.py": b"", "METADATA": METADATA})
    with pytest.raises(NoDistInfo, match=WHEEL):
        extract_metadata(wheel)


def test_two_dist_infos(tmp_path: Path) -> None:
    members = good_members() | {"other-2.0.dist-info/METADATA": b"Name: other\n"}
    with pytest.raises(AmbiguousDistInfo, match=r"several \.dist-info"):
        extract_metadata(make_wheel(tmp_path, members))


def test_dist_info_of_another_project_or_version(tmp_path: Path) -> None:
    for info in ("evil-1.0.dist-info", "foo_bar-2.0.dist-info", "foo_bar-notaversion.dist-info"):
        with pytest.raises(NoDistInfo, match="does not match"):
            extract_metadata(make_wheel(tmp_path, good_members(info)))


def test_dist_info_without_metadata(tmp_path: Path) -> None:
    members = good_members()
    del members["foo_bar-1.0.dist-info/METADATA"]
    with pytest.raises(NoDistInfo, match=re.escape("no 'foo_bar-1.0.dist-info/METADATA'")):
        extract_metadata(make_wheel(tmp_path, members))


def test_duplicate_metadata_members(tmp_path: Path) -> None:
    # Two members of one name: zip readers disagree on which one counts.
    members = good_members() | {"foo_bar-1.0.dist-info/METADATA#2": b"Name: evil\n"}
    with pytest.raises(AmbiguousDistInfo, match="appears 2 times"):
        extract_metadata(make_wheel(tmp_path, members))


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/cron.d/evil",
        "foo_bar/../../evil.py",
        "/etc/passwd",
        "foo_bar\\..\\..\\evil.py",
        "C:/evil.py",
        "foo_bar-1.0.dist-info/../../METADATA",
    ],
)
def test_path_traversal_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadWheel, match="unsafe member name"):
        extract_metadata(make_wheel(tmp_path, good_members() | {name: b"x"}))


def test_huge_metadata_is_refused_without_inflating_it(tmp_path: Path) -> None:
    # 17 MiB of zeros deflates to a few kB: a small wheel that would fill the master's memory.
    members = good_members() | {"foo_bar-1.0.dist-info/METADATA": bytes(MAX_METADATA_SIZE + 1)}
    wheel = make_wheel(tmp_path, members)
    assert wheel.stat().st_size < 100_000
    with pytest.raises(MetadataTooLarge, match="claims 16777217 bytes"):
        extract_metadata(wheel)


def set_claimed_size(wheel: Path, member: str, size: int) -> None:
    """Rewrite the central directory's uncompressed size of *member* (the figure zipfile uses)."""
    data = bytearray(wheel.read_bytes())
    entry = data.rindex(b"PK\x01\x02", 0, data.rindex(member.encode()))
    struct.pack_into("<I", data, entry + 24, size)
    wheel.write_bytes(bytes(data))


def test_metadata_claiming_gigabytes(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, good_members())
    set_claimed_size(wheel, "foo_bar-1.0.dist-info/METADATA", 0xFFFF_FFF0)
    with pytest.raises(MetadataTooLarge, match="claims 4294967280 bytes"):
        extract_metadata(wheel)


def test_metadata_larger_than_it_claims(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, good_members(), stored=True)
    set_claimed_size(wheel, "foo_bar-1.0.dist-info/METADATA", 10)
    with pytest.raises(BadWheel, match="corrupt zip"):
        extract_metadata(wheel)


def test_not_a_zip(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL
    wheel.write_bytes(b"<html>404</html>")
    with pytest.raises(BadWheel, match="corrupt zip"):
        extract_metadata(wheel)


def test_truncated_zip(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, good_members())
    wheel.write_bytes(wheel.read_bytes()[:-30])
    with pytest.raises(BadWheel):
        extract_metadata(wheel)


def test_bad_filename_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadWheel, match="not a wheel filename"):
        extract_metadata(make_wheel(tmp_path, good_members(), "foo_bar-1.0.zip"))
    with pytest.raises(BadWheel, match="cannot read"):
        extract_metadata(tmp_path / "absent-1.0-py3-none-any.whl")


def test_errors_are_value_errors_quoting_the_wheel(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, {"x.py": b""})
    with pytest.raises(MetadataError) as failure:
        extract_metadata(wheel)
    assert isinstance(failure.value, ValueError)
    assert failure.value.wheel == wheel
    assert str(failure.value).startswith(repr(WHEEL))
