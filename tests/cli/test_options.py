"""Where the programs' options come from: the command line, the environment, a config file,
and which may come only from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from tool_master import ToolThread

from piwheels.cli import add, remove
from piwheels.cli.master import build_parser
from piwheels.cli.options import ConfigError, make_parser, parse_args, per_run


def test_options_come_from_a_config_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "piwheels.toml"
    config.write_text(
        '[master]\nbuild-abi = ["cp39", "cp311"]\npypi-interval = 5\noutput-path = "/srv/www"\n'
    )
    monkeypatch.setenv("PIW_PYPI_INTERVAL", "7")
    parser = build_parser()
    args = parse_args(parser, ["--config", str(config)], "master")
    assert args.build_abi == ["cp39", "cp311"]
    assert args.pypi_interval == 7.0  # the environment beats the file
    assert args.output_path == Path("/srv/www")
    args = parse_args(build_parser(), ["--config", str(config), "--pypi-interval", "9"], "master")
    assert args.pypi_interval == 9.0  # the command line beats both


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


def own_parser() -> argparse.ArgumentParser:
    parser = make_parser("piw-test", "a command of the test's own")
    parser.add_argument("--abi", action="append", default=[])
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--follow", action="store_true")
    per_run(parser.add_argument("--yes", action="store_true"))
    return parser


def test_values_from_a_file_or_the_environment_are_converted_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "piwheels.toml"
    config.write_text('[test]\nabi = "cp39"\nverbose = "2"\nfollow = "yes"\n')
    args = parse_args(own_parser(), ["--config", str(config)], "test")
    assert (args.abi, args.verbose, args.follow) == (["cp39"], 2, True)
    monkeypatch.setenv("PIW_ABI", "cp39 cp311")
    monkeypatch.setenv("PIW_FOLLOW", "0")
    args = parse_args(own_parser(), [], "test")
    assert (args.abi, args.follow) == (["cp39", "cp311"], False)


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        ("[test]\ncolour = 1\n", "unknown option 'colour' in configuration"),
        ("[test]\ninterval = 'soon'\n", "bad value 'soon' for 'interval'"),
        ("[test]\nyes = true\n", "'yes' may only be given on the command line"),
        ("test = 1\n", r"\[test\] in '.*' is not a table"),
        ("[test\n", "cannot read config file"),
    ],
)
def test_a_config_that_cannot_be_used_is_refused_quoting_it(
    tmp_path: Path, toml: str, error: str
) -> None:
    config = tmp_path / "piwheels.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=error):
        parse_args(own_parser(), ["--config", str(config)], "test")


def test_another_commands_section_is_not_read(tmp_path: Path) -> None:
    config = tmp_path / "piwheels.toml"
    config.write_text("[master]\ninterval = 5\n[test]\n")
    assert parse_args(own_parser(), ["--config", str(config)], "test").interval == 1.0
    with pytest.raises(ConfigError, match="cannot read config file"):
        parse_args(own_parser(), ["--config", str(tmp_path / "missing.toml")], "test")
