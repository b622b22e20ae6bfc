"""What every command shares: options from a TOML file, the environment and the command line,
and logging with timestamps and task names.

Precedence, lowest first: built-in defaults, the config file (``--config FILE``, section named
after the command, e.g. ``[master]``), environment variables (``PIW_<OPTION>``, e.g.
``PIW_OUTPUT_PATH``), then the command line. Positional arguments, and options marked with
:func:`per_run`, come from the command line only.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tomllib
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from piwheels.cli.log_output import LazyFileHandler, LazyStreamHandler

LOG_FORMAT = "%(asctime)s %(threadName)-13s %(levelname)-7s %(message)s"
ENV_PREFIX = "PIW_"


class ConfigError(Exception):
    """A config file or environment variable that cannot be used, quoting it."""


_PER_RUN: weakref.WeakSet[argparse.Action] = weakref.WeakSet()


def per_run(action: argparse.Action) -> argparse.Action:
    """Mark *action* as taken from the command line only, never from a config file or the
    environment: it says what to do this time (``--yes``, ``--retry``), and a ``PIW_YES`` or
    ``retry = true`` left behind must not turn the next command into another."""
    _PER_RUN.add(action)
    return action


def _configurable(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action not in _PER_RUN


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=(
            "Every option can also be set in the config file (under [{}], with the long option "
            "name, dashes as underscores) or as the environment variable PIW_<NAME>, e.g. "
            "PIW_OUTPUT_PATH.".format(prog.removeprefix("piw-"))
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="read options from this TOML file"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (repeatable)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="log less (repeatable)")
    parser.add_argument("--log-file", type=Path, metavar="FILE", help="also log to this file")
    return parser


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, section: str
) -> argparse.Namespace:
    """Parse *argv* with defaults taken from the config file and the environment."""
    pre, _ = parser.parse_known_args(argv)
    defaults: dict[str, Any] = {}
    if pre.config is not None:
        defaults.update(_read_config(pre.config, section))
    defaults.update(_read_environment(parser))
    known = {action.dest: action for action in parser._actions}
    for name, value in defaults.items():
        if name not in known:
            raise ConfigError(f"unknown option {name!r} in configuration")
        if not _configurable(known[name]):
            raise ConfigError(f"{name!r} may only be given on the command line")
        defaults[name] = _convert(known[name], value, name)
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def _read_config(path: Path, section: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from None
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{section}] in {str(path)!r} is not a table")
    return {key.replace("-", "_"): value for key, value in table.items()}


def _read_environment(parser: argparse.ArgumentParser) -> dict[str, Any]:
    found = {}
    for action in parser._actions:
        if action.dest in ("help", "config") or not _configurable(action):
            continue
        value = os.environ.get(ENV_PREFIX + action.dest.upper())
        if value is not None:
            # a repeatable option takes a whitespace-separated list from the environment
            found[action.dest] = (
                value.split() if action.nargs == "*" or _is_append(action) else value
            )
    return found


def _is_append(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction)


def _convert(action: argparse.Action, value: Any, name: str) -> Any:
    convert = action.type if callable(action.type) else None
    try:
        if _is_append(action):
            items = value if isinstance(value, list) else [value]
            return [convert(str(v)) if convert else v for v in items]
        if isinstance(action, argparse._CountAction):
            return int(value)
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return convert(str(value)) if convert and not isinstance(value, list) else value
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"bad value {value!r} for {name!r}: {exc}") from None


def configure_logging(args: argparse.Namespace, *, batched: bool = False) -> None:
    """Log to stderr and to ``--log-file`` if given; *batched* (a daemon's many INFO lines,
    see log_output) writes lines below WARNING in batches rather than one by one."""
    level = max(logging.DEBUG, logging.INFO - 10 * (args.verbose - args.quiet))
    stream_handler, file_handler = (
        (LazyStreamHandler, LazyFileHandler)
        if batched
        else (logging.StreamHandler, logging.FileHandler)
    )
    handlers: list[logging.Handler] = [stream_handler(sys.stderr)]
    if args.log_file is not None:
        handlers.append(file_handler(args.log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)
    # third-party chatter (pgserver logs every command it runs) only when asked for
    logging.getLogger("pgserver").setLevel(max(level, logging.WARNING))
