"""What every operator's tool shares (piwheels.cli.tools): a master that misbehaves or is not
there, the help, the console scripts run as processes, and the progress bar.

The test plays the master by hand (tool_master.py): so every message a tool sends is checked as
it is on the wire, and every answer the master can give (DONE, SEND, ERROR, nonsense, silence)
is tried. Each tool's own requests are in test_add.py, test_importer.py, test_rebuild.py and
test_remove.py.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import time

import pytest
from tool_master import BIN, FakeTerminal, ToolThread, write_wheel

from farm import free_port
from piwheels.cli import add, importer, rebuild, remove
from piwheels.cli.tools import Progress


@pytest.mark.usefixtures("not_a_terminal")
def test_no_handler_of_an_earlier_test_is_left_behind():
    # Runs after tests that ran tools in-process: their logging went with them.
    assert not [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]


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
        [BIN / "piw-import", wheel, *master.import_options(), *master.options()],
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
