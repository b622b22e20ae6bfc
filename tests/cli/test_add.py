"""piw-add against a master the test plays itself: one request per action."""

from __future__ import annotations

import pytest
from tool_master import ToolThread

from piwheels.cli import add


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
        (
            ["foo", "1.0", "--release"],
            "RELEASE",
            ("foo", "1.0"),
            "published the withheld wheels of foo 1.0",
        ),
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
        (["foo", "--release"], "--release needs a VERSION"),
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
