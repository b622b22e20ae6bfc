"""``piw-verify``: check a wheel against the farm's signed statement of how it was built.

A wheel ``.../simple/<project>/<wheel>`` has its statement beside it (``<wheel>.provenance.json``)
and the farm's public key at the site's root (``piwheels-provenance.pem``); see
:mod:`piwheels.provenance`. Each may be a file or an http(s) URL. Exit status: 0 when the wheel
verifies, 1 when it does not (and why), 2 for a usage error or something that cannot be read.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Sequence
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import Request, urlopen

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from piwheels.cli.options import ConfigError, configure_logging, make_parser, parse_args, per_run
from piwheels.provenance import (
    PUBLIC_KEY_FILE,
    SUFFIX,
    ProvenanceError,
    ProvenanceKeyError,
    key_id,
    load_public_key,
    summary,
    verify,
)

DESCRIPTION = """\
Check a wheel from a piwheels farm against its signed provenance statement: that the farm's key
signed it, that it names this wheel, and that the wheel's bytes are the ones the farm built; then
say who built it, from which sdist, and how it was cross-checked. WHEEL is a file or an http(s)
URL on the index. Its statement is WHEEL.provenance.json, and the farm's key the site's
/piwheels-provenance.pem, unless given. A key taken from the site that serves the wheel shows
only that the two agree: to trust the farm, keep a copy of its key and give it with --key (or
'key' in the config file). Exit status: 0 verified, 1 not verified (the reason is printed), 2 a
usage error or a file that cannot be read.
"""

TIMEOUT = 30.0  # seconds, for each connection and read
MAX_SMALL_FILE = 1024 * 1024  # a statement or a key is a few KB; more is not one
CHUNK = 1024 * 1024


class Unreadable(Exception):
    """Something piw-verify needs that cannot be read or fetched, and why."""


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("piw-verify", DESCRIPTION)
    parser.add_argument("wheel", metavar="WHEEL", help="the wheel: a file or an http(s) URL")
    per_run(
        parser.add_argument(
            "--provenance",
            metavar="FILE_OR_URL",
            help=f"its signed statement, if not WHEEL{SUFFIX}",
        )
    )
    parser.add_argument(
        "--key",
        metavar="FILE_OR_URL",
        help=f"the farm's public key, a PEM file, if not the site's /{PUBLIC_KEY_FILE} "
        "(found for a wheel in a farm's output or on its index)",
    )
    return parser


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def wheel_name(wheel: str) -> str:
    if is_url(wheel):
        return unquote(urlsplit(wheel).path.rpartition("/")[2])
    return Path(wheel).name


def default_provenance(wheel: str) -> str:
    if is_url(wheel):
        parts = urlsplit(wheel)  # an index's links carry a #sha256=... fragment
        return urlunsplit((parts.scheme, parts.netloc, parts.path + SUFFIX, "", ""))
    return wheel + SUFFIX


def default_key(wheel: str) -> str | None:
    """The key at the root of the site or output the wheel is in, as
    ``<root>/simple/<project>/<wheel>``; None if it is not in one."""
    if is_url(wheel):
        parts = urlsplit(wheel)
        segments = parts.path.split("/")
        if len(segments) < 4 or segments[-3] != "simple":
            return None
        root = "/".join(segments[:-3])
        return urlunsplit((parts.scheme, parts.netloc, f"{root}/{PUBLIC_KEY_FILE}", "", ""))
    path = Path(wheel).absolute()
    if path.parent.parent.name != "simple":
        return None
    return str(path.parent.parent.parent / PUBLIC_KEY_FILE)


def _open(source: str) -> io.BufferedIOBase:
    if is_url(source):
        request = Request(source, headers={"User-Agent": "piw-verify"})  # noqa: S310 (http(s) only)
        response: HTTPResponse = urlopen(request, timeout=TIMEOUT)  # noqa: S310 (the same)
        return response
    return Path(source).open("rb")


def _why(exc: OSError | HTTPException) -> str:
    if isinstance(exc, HTTPError):
        exc.close()  # it holds the answer's connection open
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, URLError):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def read_small(source: str, what: str) -> bytes:
    """The bytes of the small file (a statement, a key) at *source*, a path or a URL."""
    try:
        with _open(source) as stream:
            data = stream.read(MAX_SMALL_FILE + 1)
    except (OSError, HTTPException) as exc:
        raise Unreadable(f"cannot read the {what} {source}: {_why(exc)}") from None
    if len(data) > MAX_SMALL_FILE:
        raise Unreadable(f"the {what} {source} is over {MAX_SMALL_FILE} bytes: not one")
    return data


def sha256_of(source: str) -> str:
    """The SHA-256 of the file at *source*, a path or a URL, read a chunk at a time."""
    digest = hashlib.sha256()
    try:
        with _open(source) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    except (OSError, HTTPException) as exc:
        raise Unreadable(f"cannot read the wheel {source}: {_why(exc)}") from None
    return digest.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv, "verify")
    except ConfigError as exc:
        parser.error(str(exc))
    configure_logging(args)
    wheel: str = args.wheel
    name = wheel_name(wheel)
    try:
        parse_wheel_filename(name)
    except InvalidWheelFilename as exc:
        parser.error(f"{wheel} is not a wheel: {exc}")
    key_source = args.key or default_key(wheel)
    if key_source is None:
        parser.error(
            f"{wheel} is not in a farm's output (.../simple/<project>/<wheel>), "
            "so the farm's key is not beside it: give it with --key"
        )
    provenance_source = args.provenance or default_provenance(wheel)
    try:
        wheel_sha256 = sha256_of(wheel)
        envelope = read_small(provenance_source, "provenance statement")
        key = load_public_key(read_small(key_source, "farm's public key"))
    except Unreadable as exc:
        print(f"piw-verify: {exc}", file=sys.stderr)
        return 2
    except ProvenanceKeyError as exc:
        print(f"piw-verify: the farm's public key {key_source}: {exc}", file=sys.stderr)
        return 2
    try:
        statement = verify(envelope, name, wheel_sha256, key)
    except ProvenanceError as exc:
        print(f"piw-verify: {wheel}: {exc}", file=sys.stderr)
        return 1
    print(f"OK {wheel}")
    for line in [*summary(statement), f"signed by:   {key_id(key)} ({key_source})"]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
