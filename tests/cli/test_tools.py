"""piw-import, piw-remove, piw-rebuild and piw-add against a master the test plays itself.

The test binds Mr. Chase's ROUTER and the File Juggler's ROUTER on ipc sockets in a temporary
directory, runs a tool (its ``main`` in a thread, or the installed console script as a process),
and answers each message by hand: so every message the tool sends is checked as it is on the
wire, and every answer the master can give (DONE, SEND, ERROR, nonsense, silence) is tried.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import free_port
from piwheels import protocols
from piwheels.cli import add, importer, rebuild, remove
from piwheels.cli.tools import Progress
from piwheels.protocols import NO_DATA
from piwheels.records.builds import Dependency, FileState
from piwheels.transport import Socket

BIN = Path(sys.executable).parent
WAIT = 10.0  # seconds to wait for a message that should come promptly
HOST_NOTE = f"imported by piw-import from {socket.gethostname()}"


class FakeMaster:
    """Mr. Chase's and the File Juggler's sockets, driven step by step by a test."""

    def __init__(self, context: zmq.Context[Any], directory: Path) -> None:
        self.import_queue = f"ipc://{directory}/import"
        self.file_queue = f"ipc://{directory}/files"
        self.chase = Socket(zmq.ROUTER, protocols.mr_chase, context=context)
        self.chase.bind(self.import_queue)
        self.juggler = Socket(zmq.ROUTER, protocols.file_juggler, context=context)
        self.juggler.bind(self.file_queue)
        self.address = b""
        self.file_address = b""

    def options(self, timeout: float = WAIT) -> list[str]:
        return ["--import-queue", self.import_queue, "--timeout", str(timeout)]

    def expect(self, action: str, timeout: float = WAIT) -> Any:
        """The data of the tool's next request, which must be *action*."""
        assert self.chase.poll(timeout * 1000), f"no {action} within {timeout}s"
        self.address, got, data = self.chase.recv_from()
        assert got == action, f"expected {action}, got {got} {data!r}"
        return data

    def reply(self, action: str, data: Any = NO_DATA) -> None:
        self.chase.send_to(self.address, action, data)

    def heard_nothing(self, wait: float = 0.3) -> bool:
        return not self.chase.poll(wait * 1000)

    def fetch_file(self, size: int, chunk: int, *, beyond_end: bool = False) -> bytes:
        """Play the File Juggler for one file: HELLO, every FETCH at once, chunks in any order."""
        assert self.juggler.poll(WAIT * 1000), "no HELLO on the file queue"
        self.file_address, action, slave_id = self.juggler.recv_from()
        assert (action, slave_id) == ("HELLO", 0)
        if beyond_end:  # a FETCH past the end must be refused, not answered
            self.juggler.send_to(self.file_address, "FETCH", (size - 1, 10))
        offsets = list(range(0, size, chunk))
        for offset in reversed(offsets):
            self.juggler.send_to(self.file_address, "FETCH", (offset, min(chunk, size - offset)))
        received: dict[int, bytes] = {}
        while len(received) < len(offsets):
            assert self.juggler.poll(WAIT * 1000), "a CHUNK never came"
            _, action, (offset, data) = self.juggler.recv_from()
            assert action == "CHUNK"
            assert offset not in received
            received[offset] = data
        self.juggler.send_to(self.file_address, "DONE")
        assert not self.juggler.poll(100), "the tool sent more than it was asked for"
        return b"".join(received[offset] for offset in offsets)

    def close(self) -> None:
        self.chase.close()
        self.juggler.close()


class ToolThread:
    """A tool's ``main(argv)`` running in a thread, so the test can play the master meanwhile."""

    def __init__(self, main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
        self.status: int | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(main, argv), daemon=True)
        self.thread.start()

    def _run(self, main: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
        self.status = main(argv)

    def join(self, timeout: float = WAIT) -> int | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the tool did not finish"
        return self.status


class FakeTerminal(io.StringIO):
    """Standard input on a terminal, where the operator types *answer*."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # A tool configures the root logger for the process it thinks it owns: a StreamHandler on
    # this test's captured stderr, which must not outlive the test. (pytest's own handlers are
    # subclasses, added and removed around each phase by pytest itself.)
    root = logging.getLogger()
    level = root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def master(context: zmq.Context[Any], tmp_path: Path) -> Iterator[FakeMaster]:
    fake = FakeMaster(context, tmp_path)
    yield fake
    fake.close()


@pytest.fixture
def not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # typed ahead, but nobody asked


def write_wheel(
    directory: Path,
    name: str,
    version: str,
    tag: str = "py3-none-any",
    *,
    meta_name: str | None = None,
    meta_version: str | None = None,
    extra: Sequence[str] = (),
    payload: bytes = b"",
) -> Path:
    """A small real wheel; METADATA may disagree with the filename when a test needs it to."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {meta_name or name}",
        f"Version: {meta_version or version}",
        *extra,
    ]
    path = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(f"{dist}.py", "VALUE = 1\n")
        wheel.writestr(f"{dist}/data.bin", payload, compress_type=zipfile.ZIP_STORED)
        wheel.writestr(f"{info}/METADATA", "\n".join(metadata) + "\n\n")
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- piw-import -------------------------------------------------------------------------------


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
            *("--file-queue", master.file_queue, *master.options()),
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
    tool = ToolThread(importer.main, [*map(str, wheels), *master.options()])
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
        [str(wheel), "--package", "Foo.Bar", "--version", "1.0.0", *master.options()],
    )
    assert master.expect("IMPORT")[1:3] == ("foo-bar", "1.0.0")
    master.reply("DONE")
    assert tool.join() == 0

    for override in (["--package", "foo"], ["--version", "1.1"], ["--package", "not valid!"]):
        status = importer.main([str(wheel), *override, *master.options()])
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
    status = importer.main([str(good), *map(str, bad), *master.options()])
    assert status == 2
    err = capsys.readouterr().err
    assert "nothing was imported" in err
    for path, problem in bad.items():
        assert f"{path}: {problem}" in err
    assert str(good) not in err
    assert master.heard_nothing()


def test_import_refused_by_the_master_exits_1_and_keeps_the_wheels(master, tmp_path, capsys):
    wheel = write_wheel(tmp_path, "foo", "1.0")
    tool = ToolThread(importer.main, [str(wheel), "--delete", *master.options()])
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
        [str(wheel), "--file-queue", master.file_queue, *master.options(timeout=0.5)],
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
    tool = ToolThread(
        importer.main, [str(wheel), "--file-queue", master.file_queue, *master.options()]
    )
    master.expect("IMPORT")
    master.reply("SEND", "other-1.0-py3-none-any.whl")
    assert tool.join() == 1
    assert "not in this import" in capsys.readouterr().err

    tool = ToolThread(
        importer.main, [str(wheel), "--file-queue", master.file_queue, *master.options()]
    )
    master.expect("IMPORT")
    for _ in range(importer.MAX_SENDS):
        master.reply("SEND", wheel.name)
        master.fetch_file(wheel.stat().st_size, 1 << 20)
        master.expect("SENT")
    master.reply("SEND", wheel.name)
    assert tool.join() == 1
    assert f"asked for {wheel.name} {importer.MAX_SENDS} times" in capsys.readouterr().err


# -- piw-remove -------------------------------------------------------------------------------


@pytest.mark.usefixtures("not_a_terminal")
def test_remove_needs_yes_without_a_terminal(master, capsys):
    assert remove.main(["foo", "1.0", *master.options()]) == 2
    assert "refusing to remove foo 1.0" in capsys.readouterr().err
    assert master.heard_nothing()

    tool = ToolThread(remove.main, ["Foo", "1.0", "--yes", *master.options()])
    assert master.expect("REMOVE") == ("foo", "1.0", "")
    master.reply("DONE")
    assert tool.join() == 0
    assert "removed foo 1.0" in capsys.readouterr().out

    tool = ToolThread(
        remove.main, ["foo", "1.0", "-y", "--skip", " broken build ", *master.options()]
    )
    assert master.expect("REMOVE") == ("foo", "1.0", "broken build")
    master.reply("ERROR", "no such version: foo 1.0")
    assert tool.join() == 1
    assert "piw-remove: error: no such version: foo 1.0" in capsys.readouterr().err


def test_remove_asks_on_a_terminal(master, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", FakeTerminal("n\n"))
    assert remove.main(["foo", "1.0", "--skip", "bad", *master.options()]) == 2
    err = capsys.readouterr().err
    assert "Remove foo 1.0 and its wheels, and never build it again (bad)? [y/N]" in err
    assert "not confirmed" in err
    assert master.heard_nothing()

    monkeypatch.setattr(sys, "stdin", FakeTerminal("yes\n"))
    tool = ToolThread(remove.main, ["foo", "1.0", *master.options()])
    assert master.expect("REMOVE") == ("foo", "1.0", "")
    master.reply("DONE")
    assert tool.join() == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["not a name!", "1.0", "-y"], "'not a name!' is not a valid project name"),
        (["foo", "1 0", "-y"], "'1 0' is not a version"),
        (["foo", "1.0", "-y", "--skip", " "], "--skip needs a reason"),
        (["foo"], "the following arguments are required: VERSION"),
        (["foo", "1.0", "-y", "--timeout", "0"], "'0' is not a positive number of seconds"),
    ],
)
def test_remove_bad_arguments(master, capsys, argv, message):
    assert remove.main([*argv, "--import-queue", master.import_queue]) == 2
    assert message in capsys.readouterr().err
    assert master.heard_nothing(0.1)


# -- piw-rebuild ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "request_", "said"),
    [
        (["home"], ("HOME", None), "rebuilding home"),
        (["search"], ("SEARCH", None), "rebuilding search"),
        (["project", "Foo_Bar"], ("PROJECT", "foo-bar"), "rebuilding project pages of foo-bar"),
        (["both"], ("BOTH", None), "rebuilding both pages of every project"),
    ],
)
def test_rebuild_sends_the_part(master, capsys, argv, request_, said):
    tool = ToolThread(rebuild.main, [*argv, *master.options()])
    assert master.expect("REBUILD") == request_
    master.reply("DONE")
    assert tool.join() == 0
    assert said in capsys.readouterr().out


def test_rebuild_bad_arguments_and_refusals(master, capsys):
    assert rebuild.main(["home", "foo", *master.options()]) == 2
    assert "home takes no PACKAGE" in capsys.readouterr().err
    assert rebuild.main(["everything", *master.options()]) == 2
    assert "invalid choice: 'everything'" in capsys.readouterr().err
    assert master.heard_nothing()

    tool = ToolThread(rebuild.main, ["both", "nosuch", *master.options()])
    master.expect("REBUILD")
    master.reply("ERROR", "no such package: nosuch")
    assert tool.join() == 1
    assert "piw-rebuild: error: no such package: nosuch" in capsys.readouterr().err


# -- piw-add ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "action", "data", "said"),
    [
        (["Foo"], "ADD", ("foo", None, ""), "added foo"),
        (["foo", "1.0"], "ADD", ("foo", "1.0", ""), "added foo 1.0"),
        (
            ["foo", "1.0", "--new", "--skip", "needs CUDA"],
            "ADD",
            ("foo", "1.0", "needs CUDA"),
            "added foo 1.0 (never to be built: needs CUDA)",
        ),
        (["foo", "--skip", "spam"], "SKIP", ("foo", None, "spam"), "foo will not be built (spam)"),
        (["foo", "1.0", "--unskip"], "SKIP", ("foo", "1.0", ""), "foo 1.0 may be built again"),
        (["foo", "1.0", "--yank"], "YANK", ("foo", "1.0", True), "yanked foo 1.0"),
        (["foo", "1.0", "--unyank"], "YANK", ("foo", "1.0", False), "unyanked foo 1.0"),
        (
            ["foo", "1.0", "--retry", "--abi", "cp311", "--yes"],
            "RETRY",
            ("foo", "1.0", "cp311"),
            "the failed builds of foo 1.0 on cp311 will be retried",
        ),
        (["foo", "1.0", "--retry", "-y"], "RETRY", ("foo", "1.0", None), "will be retried"),
    ],
)
@pytest.mark.usefixtures("not_a_terminal")
def test_add_sends_one_request_per_action(master, capsys, argv, action, data, said):
    tool = ToolThread(add.main, [*argv, *master.options()])
    assert master.expect(action) == data
    master.reply("DONE")
    assert tool.join() == 0
    assert said in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["foo", "--yank"], "--yank needs a VERSION"),
        (["foo", "--retry", "-y"], "--retry needs a VERSION"),
        (["foo", "1.0", "--abi", "cp311"], "--abi goes with --retry or --installed only"),
        (["foo", "1.0", "--new", "--yank"], "--new goes with --skip only"),
        (["foo", "1.0", "--yank", "--unyank"], "not allowed with argument"),
        (["foo", "1.0", "--retry", "-y", "--abi", "py3"], "not a CPython ABI tag: 'py3'"),
        (["foo", "1.0", "--skip", ""], "--skip needs a reason"),
        (["foo", "1.0", "--retry"], "refusing to forget the failed builds of foo 1.0"),
    ],
)
@pytest.mark.usefixtures("not_a_terminal")
def test_add_bad_arguments(master, capsys, argv, message):
    assert add.main([*argv, *master.options()]) == 2
    assert message in capsys.readouterr().err
    assert master.heard_nothing(0.1)


@pytest.mark.usefixtures("not_a_terminal")
def test_no_handler_of_an_earlier_test_is_left_behind():
    # Runs after tests that ran tools in-process: their logging went with them.
    assert not [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]


def test_per_run_options_come_only_from_the_command_line(master, monkeypatch, tmp_path, capsys):
    # The master's address may come from the environment; an action or --yes may not.
    monkeypatch.setenv("PIW_IMPORT_QUEUE", master.import_queue)
    monkeypatch.setenv("PIW_YES", "1")
    monkeypatch.setenv("PIW_RETRY", "1")
    monkeypatch.setenv("PIW_VERSION", "9.9")
    assert remove.main(["foo", "1.0"]) == 2
    assert "without --yes" in capsys.readouterr().err
    tool = ToolThread(add.main, ["foo"])
    assert master.expect("ADD") == ("foo", None, "")
    master.reply("DONE")
    assert tool.join() == 0

    config = tmp_path / "tools.toml"
    config.write_text("[add]\nretry = true\n")
    assert add.main(["foo", "1.0", "--config", str(config)]) == 2
    assert "'retry' may only be given on the command line" in capsys.readouterr().err
    assert master.heard_nothing()


# -- the master misbehaves or is not there ----------------------------------------------------


def test_nonsense_from_the_master_exits_1(master, capsys):
    tool = ToolThread(rebuild.main, ["home", *master.options()])
    master.expect("REBUILD")
    master.reply("SEND", "what.whl")
    assert tool.join() == 1
    assert "the master answered REBUILD with SEND" in capsys.readouterr().err

    tool = ToolThread(remove.main, ["foo", "1.0", "-y", *master.options()])
    master.expect("REMOVE")
    master.chase.send_raw_to(master.address, b"\xff not cbor")
    assert tool.join() == 1
    assert "the master's answer to REMOVE makes no sense" in capsys.readouterr().err


@pytest.mark.parametrize(
    "tool",
    [
        [importer.main, "WHEEL"],
        [remove.main, "foo", "1.0", "--yes"],
        [rebuild.main, "home"],
        [add.main, "foo"],
    ],
    ids=["import", "remove", "rebuild", "add"],
)
def test_no_master_exits_3_at_once(tmp_path, capsys, tool):
    main, *argv = tool
    argv = [str(write_wheel(tmp_path, "foo", "1.0")) if a == "WHEEL" else a for a in argv]
    address = f"ipc://{tmp_path}/no-master"
    started = time.monotonic()
    assert main([*argv, "--import-queue", address]) == 3
    assert time.monotonic() - started < 1.0  # no waiting for the timeout
    err = capsys.readouterr().err
    assert f"no master at {address}" in err
    assert "is piw-master running" in err


def test_stale_socket_exits_3_at_once(tmp_path, capsys):
    left = tmp_path / "left-behind"
    with socket.socket(socket.AF_UNIX) as dead:  # what a killed master leaves
        dead.bind(str(left))
    plain = tmp_path / "plain-file"
    plain.touch()
    for path in (left, plain):
        started = time.monotonic()
        assert rebuild.main(["home", "--import-queue", f"ipc://{path}"]) == 3
        assert time.monotonic() - started < 1.0
        assert f"nothing is listening on {path}" in capsys.readouterr().err


def test_silent_master_exits_3_after_the_timeout(master, capsys):
    # Listening but not answering (a master stuck, or stopped on another machine over tcp).
    for address in (master.import_queue, f"tcp://127.0.0.1:{free_port()}"):
        started = time.monotonic()
        assert rebuild.main(["home", "--import-queue", address, "--timeout", "0.5"]) == 3
        assert 0.4 <= time.monotonic() - started < 3.0
        assert f"no answer from the master at {address} within 0.5s" in capsys.readouterr().err


# -- as an operator runs them -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "module"),
    [("piw-import", importer), ("piw-remove", remove), ("piw-rebuild", rebuild), ("piw-add", add)],
)
def test_help_describes_every_option(tool, module):
    result = subprocess.run([BIN / tool, "--help"], capture_output=True, text=True, check=True)
    for action in module.build_parser()._actions:
        for option in action.option_strings:
            assert option in result.stdout
        assert action.help, f"{tool}: {action.dest} has no help"
    assert "Exit status: 0 done; 1 the master refused" in " ".join(result.stdout.split())


def test_console_scripts_as_processes(master, tmp_path):
    # stdin is not a terminal: a destructive action without --yes is refused, nothing is sent.
    result = subprocess.run(
        [BIN / "piw-remove", "foo", "1.0", *master.options()],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to remove foo 1.0 and its wheels, and build it again without --yes" in (
        result.stderr
    )
    assert master.heard_nothing()

    wheel = write_wheel(tmp_path, "foo", "1.0", payload=os.urandom(3 << 20))
    process = subprocess.Popen(
        [BIN / "piw-import", wheel, "--file-queue", master.file_queue, *master.options()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        [file] = master.expect("IMPORT")[7]
        master.reply("SEND", wheel.name)
        assert master.fetch_file(file.filesize, 1 << 20) == wheel.read_bytes()
        master.expect("SENT")
        master.reply("DONE")
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out == "imported foo 1.0 (1 file)\n"
    assert err == ""  # no progress bar and no log chatter when stderr is not a terminal


def test_progress_bar_draws_on_a_terminal_only():
    terminal = FakeTerminal()
    progress = Progress(1000, stream=terminal)
    progress.start("foo-1.0-py3-none-any.whl")
    progress.advance(600)
    progress.advance(600)  # a chunk fetched twice: never past 100%
    progress._drawn_at = 0  # let the next draw through without waiting 0.1 s
    progress.advance(0)
    progress.finish()
    drawn = terminal.getvalue()
    assert "[------------------------------]   0% foo-1.0-py3-none-any.whl" in drawn
    assert "[##############################] 100% foo-1.0-py3-none-any.whl" in drawn
    assert drawn.endswith("\r\x1b[K")

    log = io.StringIO()
    quiet = Progress(1000, stream=log)
    quiet.start("x")
    quiet.advance(1000)
    quiet.finish()
    assert log.getvalue() == ""
    silenced = FakeTerminal()
    Progress(10, stream=silenced, enabled=False).start("x")
    assert silenced.getvalue() == ""
