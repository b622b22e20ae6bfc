"""piw-import against a master the test plays itself: the build, then each file the master
asks for."""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from datetime import timedelta

from tool_master import HOST_NOTE, WAIT, ToolThread, sha256, write_wheel

from piwheels.cli import importer
from piwheels.records.builds import Dependency, FileState


def test_import_sends_the_build_then_each_file_the_master_asks_for(master, tmp_path, capsys):
    pure = write_wheel(
        tmp_path,
        "foo",
        "1.0",
        extra=[
            "Requires-Python: >=3.9",
            "Requires-Dist: Bar >= 1.0",
            'Requires-Dist: baz; extra == "x"',
        ],
        payload=os.urandom(5000),
    )
    cext = write_wheel(
        tmp_path, "foo", "1.0", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    )
    tool = ToolThread(
        importer.main,
        [
            *(str(pure), str(cext), "--abi", "cp311", "--delete"),
            *(*master.import_options(), *master.options()),
        ],
    )

    request = master.expect("IMPORT")
    assert request == (
        0,
        "foo",
        "1.0",
        "cp311",
        True,
        timedelta(0),
        HOST_NOTE,
        [
            FileState(
                pure.name,
                pure.stat().st_size,
                sha256(pure),
                "foo",
                "1.0",
                "py3",
                "none",
                "any",
                frozenset({Dependency("pip", "Bar>=1.0"), Dependency("pip", 'baz; extra == "x"')}),
                ">=3.9",
            ),
            FileState(
                cext.name,
                cext.stat().st_size,
                sha256(cext),
                "foo",
                "1.0",
                "cp311",
                "cp311",
                "manylinux2014_x86_64.manylinux_2_17_x86_64",  # sorted, as the slaves report
                frozenset(),
                None,
            ),
        ],
    )
    # The order is the master's: the second file first, in small chunks out of order, with a
    # FETCH beyond the end (refused); then again, as when its verification failed.
    master.reply("SEND", cext.name)
    assert master.fetch_file(cext.stat().st_size, 100, beyond_end=True) == cext.read_bytes()
    master.expect("SENT")
    master.reply("SEND", cext.name)
    assert master.fetch_file(cext.stat().st_size, 1 << 20) == cext.read_bytes()
    master.expect("SENT")
    master.reply("SEND", pure.name)
    content = master.fetch_file(pure.stat().st_size, 1000)
    assert hashlib.sha256(content).hexdigest() == request[7][0].filehash
    assert pure.exists()  # not deleted before the master is done
    master.expect("SENT")
    master.reply("DONE")

    assert tool.join() == 0
    assert "imported foo 1.0 (2 files)" in capsys.readouterr().out
    assert not pure.exists()
    assert not cext.exists()


def test_import_makes_one_build_per_project_version(master, tmp_path, capsys):
    wheels = [
        write_wheel(tmp_path, "foo", "1.0"),
        write_wheel(tmp_path, "bar", "2.0", meta_name="Bar"),
        write_wheel(tmp_path, "foo", "1.0", "cp39-cp39-linux_armv7l"),
        # PyPI knows the version as the author spelt it in METADATA, not as the filename has it
        write_wheel(tmp_path, "foo", "2.0.post1", meta_version="2.0-1"),
    ]
    tool = ToolThread(
        importer.main, [*map(str, wheels), *master.import_options(), *master.options()]
    )
    for project, version, files in (
        ("foo", "1.0", [wheels[0].name, wheels[2].name]),
        ("bar", "2.0", [wheels[1].name]),
        ("foo", "2.0-1", [wheels[3].name]),
    ):
        request = master.expect("IMPORT")
        assert request[1:4] == (project, version, None)
        assert [f.filename for f in request[7]] == files
        master.reply("DONE")  # all already published with these hashes: nothing to send
    assert tool.join() == 0
    out = capsys.readouterr().out
    assert "imported foo 1.0 (2 files)\nimported bar 2.0 (1 file)\nimported foo 2.0-1" in out
    assert all(wheel.exists() for wheel in wheels)  # no --delete


def test_import_overrides_must_agree_with_the_wheels(master, tmp_path, capsys):
    wheel = write_wheel(tmp_path, "foo-bar", "1.0")
    tool = ToolThread(
        importer.main,
        [
            str(wheel),
            "--package",
            "Foo.Bar",
            "--version",
            "1.0.0",
            *master.import_options(),
            *master.options(),
        ],
    )
    assert master.expect("IMPORT")[1:3] == ("foo-bar", "1.0.0")
    master.reply("DONE")
    assert tool.join() == 0

    for override in (["--package", "foo"], ["--version", "1.1"], ["--package", "not valid!"]):
        status = importer.main([str(wheel), *override, *master.import_options(), *master.options()])
        assert status == 2, override
        assert override[1] in capsys.readouterr().err
    assert master.heard_nothing()


def test_import_reports_every_bad_wheel_and_sends_nothing(master, tmp_path, capsys):
    good = write_wheel(tmp_path, "good", "1.0")
    (tmp_path / "junk-1.0-py3-none-any.whl").write_bytes(b"not a zip at all")
    (tmp_path / "readme.txt").write_text("hello")
    misnamed = write_wheel(tmp_path, "named", "1.0", meta_name="other")
    misversioned = write_wheel(tmp_path, "versioned", "1.0", meta_version="1.1")
    no_info = tmp_path / "empty-1.0-py3-none-any.whl"
    with zipfile.ZipFile(no_info, "w") as archive:
        archive.writestr("empty.py", "")
    bad = {
        tmp_path / "junk-1.0-py3-none-any.whl": "corrupt zip",
        tmp_path / "readme.txt": "not a wheel filename",
        misnamed: "its METADATA names 'other'",
        misversioned: "its METADATA says version '1.1'",
        no_info: "no .dist-info",
        tmp_path / "gone-1.0-py3-none-any.whl": "no such file",
        tmp_path: "not a file",
    }
    status = importer.main([str(good), *map(str, bad), *master.import_options(), *master.options()])
    assert status == 2
    err = capsys.readouterr().err
    assert "nothing was imported" in err
    for path, problem in bad.items():
        assert f"{path}: {problem}" in err
    assert str(good) not in err
    assert master.heard_nothing()


def test_import_refused_by_the_master_exits_1_and_keeps_the_wheels(master, tmp_path, capsys):
    wheel = write_wheel(tmp_path, "foo", "1.0")
    tool = ToolThread(
        importer.main, [str(wheel), "--delete", *master.import_options(), *master.options()]
    )
    master.expect("IMPORT")
    master.reply("ERROR", "no such version: foo 1.0 (piw-add it first)")
    assert tool.join() == 1
    assert "piw-import: error: no such version: foo 1.0 (piw-add it first)" in (
        capsys.readouterr().err
    )
    assert wheel.exists()


def test_import_says_sent_when_the_file_juggler_is_silent(master, tmp_path, capsys):
    wheel = write_wheel(tmp_path, "foo", "1.0")
    tool = ToolThread(
        importer.main,
        [str(wheel), *master.import_options(), *master.options(timeout=0.5)],
    )
    master.expect("IMPORT")
    master.reply("SEND", wheel.name)
    assert master.juggler.poll(WAIT * 1000)  # HELLO, never answered
    asked = time.monotonic()
    master.expect("SENT")  # the master, not the tool, decides whether the file arrived
    assert time.monotonic() - asked >= 0.4
    master.reply("ERROR", f"{wheel.name} did not arrive intact: incomplete")
    assert tool.join() == 1
    assert "did not arrive intact" in capsys.readouterr().err


def test_import_gives_up_on_a_master_that_asks_forever(master, tmp_path, capsys):
    wheel = write_wheel(tmp_path, "foo", "1.0")
    tool = ToolThread(importer.main, [str(wheel), *master.import_options(), *master.options()])
    master.expect("IMPORT")
    master.reply("SEND", "other-1.0-py3-none-any.whl")
    assert tool.join() == 1
    assert "not in this import" in capsys.readouterr().err

    tool = ToolThread(importer.main, [str(wheel), *master.import_options(), *master.options()])
    master.expect("IMPORT")
    for _ in range(importer.MAX_SENDS):
        master.reply("SEND", wheel.name)
        master.fetch_file(wheel.stat().st_size, 1 << 20)
        master.expect("SENT")
    master.reply("SEND", wheel.name)
    assert tool.join() == 1
    assert f"asked for {wheel.name} {importer.MAX_SENDS} times" in capsys.readouterr().err
