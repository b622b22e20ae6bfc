"""piw-rebuild against a master the test plays itself."""

from __future__ import annotations

import pytest
from tool_master import ToolThread

from piwheels.cli import rebuild


@pytest.mark.parametrize(
    ("argv", "request_", "said"),
    [
        (["home"], ("HOME", None), "rebuilding home"),
        (["search"], ("SEARCH", None), "rebuilding search"),
        (["site"], ("SITE", None), "rebuilding site"),
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
