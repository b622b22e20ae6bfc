"""piw-slave's command line: options, durations, and refusals before any connection is made."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

import pytest

from piwheels.cli import slave as cli


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300", 300),
        ("0.5", 0.5),
        ("90s", 90),
        ("5m", 300),
        ("3h", 10800),
        ("1h30m", 5400),
        ("1d", 86400),
        ("2m 30s", 150),
    ],
)
def test_durations(text, seconds):
    assert cli.parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0", "-5", "3x", "h", "5m3", "nan", "inf", "1e99"])
def test_bad_durations(text):
    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        cli.parse_duration(text)


def test_help_describes_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in [
        "--master",
        "--slave-port",
        "--file-port",
        "--slave-queue",
        "--file-queue",
        "--python",
        "--timeout",
        "--master-timeout",
        "--label",
        "--dir",
        "--busy-interval",
        "--sleep-interval",
        "--allow-root",
    ]:
        assert option in text
    parser = cli.make_slave_parser()
    assert all(action.help for action in parser._actions)


def test_defaults_and_addresses(monkeypatch):
    for name in [n for n in os.environ if n.startswith("PIW_")]:
        monkeypatch.delenv(name)
    args = cli.make_slave_parser().parse_args([])
    assert (args.master, args.slave_port, args.file_port) == ("localhost", 5555, 5556)
    assert args.timeout == timedelta(hours=3)
    assert args.master_timeout == timedelta(seconds=300)
    assert args.busy_interval == args.sleep_interval == timedelta(seconds=10)
    assert args.label and "." not in args.label
    assert cli._address("master.example", 5555) == "tcp://master.example:5555"
    assert cli._address("fd00::1", 5556) == "tcp://[fd00::1]:5556"


def test_environment_sets_options(monkeypatch):
    monkeypatch.setenv("PIW_TIMEOUT", "2h")
    monkeypatch.setenv("PIW_MASTER", "build-master")
    args = cli.parse_args(cli.make_slave_parser(), [], "slave")
    assert args.timeout == timedelta(hours=2)
    assert args.master == "build-master"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root is refused")
def test_refuses_root_unless_allowed(capsys):
    # main() configures logging itself (to stderr), replacing pytest's log capture.
    assert cli.main(["--master", "127.0.0.1"]) == 2
    assert "refusing to run as root" in capsys.readouterr().err


def test_bad_interpreter(tmp_path, capsys):
    assert cli.main(["--allow-root", "--python", str(tmp_path / "nopython")]) == 2
    assert "cannot build with" in capsys.readouterr().err
