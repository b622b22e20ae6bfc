"""piw-remove against a master the test plays itself, asking first."""

from __future__ import annotations

import sys

import pytest
from tool_master import FakeTerminal, ToolThread

from piwheels.cli import remove


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
