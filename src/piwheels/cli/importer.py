"""``piw-import``: put wheels built elsewhere into the farm, as if a slave had built them.

Every wheel is checked before anything is sent: its filename, its zip, its METADATA (whose Name
and Version must be the filename's), and its size and SHA256 are measured. Wheels of one project
version make one IMPORT to Mr. Chase; the master then asks for each file (SEND), which is handed
to the File Juggler like a slave's, and answers DONE once all are verified and recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import zmq
from packaging.metadata import parse_email
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from piwheels import defaults
from piwheels.builder_keys import MASTER_KEY, ClientKeys, KeyFileError, key_pair
from piwheels.cli.options import per_run
from piwheels.cli.tools import (
    BadInput,
    MasterClient,
    MasterError,
    Progress,
    abi_tag,
    add_master_options,
    make_tool_parser,
    project_name,
    run_tool,
)
from piwheels.file_sender import send_file
from piwheels.records.builds import FileState
from piwheels.web.writer import MetadataError, extract_metadata
from piwheels.wheels import joined_tags, pip_dependencies

__all__ = ["WheelInfo", "inspect_wheel", "main"]

# Mr. Chase takes one import at a time, so every importer can use the same id on the file queue.
IMPORTER_SLAVE_ID = 0
# The File Juggler's default address as seen from the master's own machine.
DEFAULT_FILE_QUEUE = f"tcp://localhost:{defaults.FILE_PORT}"
# A master that asks for the same file again and again (its verification keeps failing) is
# told no more after this many attempts rather than looped with forever.
MAX_SENDS = 5
_BLOCK = 1 << 20

DESCRIPTION = """\
Import wheels built outside the farm into it, as successful builds: the master records them,
fetches each file over its file queue, verifies its SHA256 and publishes it in the index and on
the project page. Wheels are grouped by project and version; each group is one build, recorded
for --abi (by default the farm's lowest build ABI). Every wheel is checked first (a real zip
whose METADATA names the same project and version as its filename); if any is bad, nothing is
sent.
"""


@dataclass(frozen=True)
class WheelInfo:
    """A checked wheel: where it is, what the master is told about it, and whose it is."""

    path: Path
    state: FileState
    project: str  # PEP 503 normalized
    version: Version
    version_text: str  # as the METADATA spells it, which is how PyPI (and the master) know it


def build_parser() -> argparse.ArgumentParser:
    parser = make_tool_parser("piw-import", DESCRIPTION)
    parser.add_argument(
        "wheels", nargs="+", type=Path, metavar="WHEEL", help="the wheels to import"
    )
    per_run(
        parser.add_argument(
            "--package",
            type=project_name,
            metavar="NAME",
            help="the project the wheels belong to (default: from each filename); must be the "
            "wheels' own project, compared as PEP 503 names",
        )
    )
    per_run(
        parser.add_argument(
            "--version",
            metavar="VERSION",
            help="the version as the master knows it, when PyPI spells it differently from the "
            "wheels (e.g. 1.0-1 for 1.0.post1); must equal theirs under PEP 440 "
            "(default: the Version in each wheel's METADATA)",
        )
    )
    per_run(
        parser.add_argument(
            "--abi",
            type=abi_tag,
            metavar="TAG",
            help="the build ABI to record the builds for, e.g. cp311 (default: the farm's lowest)",
        )
    )
    per_run(
        parser.add_argument(
            "--delete",
            action="store_true",
            help="delete each wheel once the master has it (not if the import fails)",
        )
    )
    parser.add_argument(
        "--file-queue",
        default=DEFAULT_FILE_QUEUE,
        metavar="ADDR",
        help="the master's --file-queue, where its File Juggler fetches the wheels",
    )
    parser.add_argument(
        "--key-dir",
        type=Path,
        default=defaults.key_dir(),
        metavar="DIR",
        help="the master's --key-dir: the wheels are sent with the master's own key, which "
        "only the master's user can read",
    )
    add_master_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    return run_tool(parser, argv, run)


def run(args: argparse.Namespace) -> None:
    wheels = inspect_all(args.wheels, args.package, args.version)
    groups: dict[tuple[str, Version], list[WheelInfo]] = {}
    for wheel in wheels:
        groups.setdefault((wheel.project, wheel.version), []).append(wheel)
    output = f"imported by piw-import from {socket.gethostname()}"
    progress = Progress(sum(w.state.filesize for w in wheels), enabled=not args.quiet)
    context: zmq.Context[Any] = zmq.Context()
    try:
        with MasterClient(args.import_queue, args.timeout, context=context) as client:
            keys = importer_keys(args.key_dir)  # a master that is not there says more
            for (project, _), group in groups.items():
                version = args.version or group[0].version_text
                request = (
                    0,  # the spec's slave_id for imports; the master ignores it
                    project,
                    version,
                    args.abi,
                    True,
                    timedelta(0),
                    output,
                    [wheel.state for wheel in group],
                )
                importer = _Import(client, context, args, keys, progress)
                try:
                    importer.run(request, group)
                finally:
                    progress.finish()
                print(f"imported {project} {version} ({_files(len(group))})")
                if args.delete:
                    _delete(group)
    finally:
        context.destroy(linger=0)


class _Import:
    """One IMPORT conversation: the request, then a transfer for each SEND, until DONE."""

    def __init__(
        self,
        client: MasterClient,
        context: zmq.Context[Any],
        args: argparse.Namespace,
        keys: ClientKeys,
        progress: Progress,
    ) -> None:
        self.client = client
        self.context = context
        self.file_queue: str = args.file_queue
        self.keys = keys
        self.timeout: float = args.timeout
        self.progress = progress

    def run(self, request: tuple[object, ...], group: list[WheelInfo]) -> None:
        by_name = {wheel.state.filename: wheel for wheel in group}
        sends = dict.fromkeys(by_name, 0)
        reply, data = self.client.request("IMPORT", request)
        while reply == "SEND":
            wheel = by_name.get(data)
            if wheel is None:
                raise MasterError(f"the master asked for {data!r}, which is not in this import")
            sends[data] += 1
            if sends[data] > MAX_SENDS:
                raise MasterError(f"the master asked for {data} {MAX_SENDS} times; giving up")
            self.transfer(wheel)
            reply, data = self.client.request("SENT")
        if reply != "DONE":
            raise MasterError(f"the master answered IMPORT with {reply}")

    def transfer(self, wheel: WheelInfo) -> None:
        self.progress.start(wheel.state.filename)
        try:
            with wheel.path.open("rb") as file:
                # SENT follows whatever happens here: the master knows whether the file arrived
                # and asks for it again, or gives up with an ERROR, if it did not.
                send_file(
                    self.context,
                    self.file_queue,
                    IMPORTER_SLAVE_ID,
                    file,
                    timeout=self.timeout,
                    on_chunk=lambda _offset, length: self.progress.advance(length),
                    routing_id=self.client.routing_id,
                    keys=self.keys,
                )
        except OSError as exc:
            print(f"piw-import: cannot send {wheel.path}: {exc.strerror}", file=sys.stderr)


def importer_keys(key_dir: Path) -> ClientKeys:
    """The master's own key pair, which its File Juggler admits from piw-import."""
    try:
        pair, _ = key_pair(key_dir, MASTER_KEY, make=False)
    except KeyFileError as exc:
        raise BadInput(
            f"{exc} (piw-import runs as the master's user, with its --key-dir)"
        ) from None
    return ClientKeys(pair, pair.public)


def inspect_all(paths: Sequence[Path], package: str | None, version: str | None) -> list[WheelInfo]:
    """Check every wheel named on the command line; :class:`BadInput` lists all the bad ones."""
    problems: list[str] = []
    wheels: list[WheelInfo] = []
    seen: dict[str, Path] = {}
    # The same file named twice (a/x.whl, ./a/x.whl) is imported once; messages quote the
    # paths as the operator typed them.
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    for path in unique.values():
        try:
            wheel = inspect_wheel(path)
            _check_override(wheel, package, version)
        except BadInput as exc:
            problems.append(str(exc))
            continue
        other = seen.setdefault(path.name, path)
        if other is not path:
            problems.append(f"{path}: a different wheel of the same name is imported ({other})")
            continue
        wheels.append(wheel)
    if problems:
        raise BadInput("\n  ".join(["bad wheels; nothing was imported:", *problems]))
    return wheels


def inspect_wheel(path: Path) -> WheelInfo:
    """Check *path* is a wheel whose METADATA agrees with its filename, and describe it."""
    if not path.is_file():
        raise BadInput(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        project, version, _, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise BadInput(f"{path}: not a wheel filename ({exc})") from None
    try:
        raw, _ = parse_email(extract_metadata(path))
    except MetadataError as exc:
        raise BadInput(f"{path}: {exc.problem}") from None
    except ValueError as exc:  # parse_email: METADATA that is not text
        raise BadInput(f"{path}: unreadable METADATA ({exc})") from None
    name, version_text = raw.get("name"), raw.get("version")
    if not name or not version_text:
        raise BadInput(f"{path}: its METADATA lacks a Name or a Version")
    if canonicalize_name(name) != project:
        raise BadInput(f"{path}: its METADATA names {name!r}, its filename {project!r}")
    if _version(version_text) != version:
        raise BadInput(
            f"{path}: its METADATA says version {version_text!r}, its filename {str(version)!r}"
        )
    size, sha256 = _measure(path)
    py_tag, abi_tag, platform_tag = joined_tags(tags)
    state = FileState(
        filename=path.name,
        filesize=size,
        filehash=sha256,
        package_tag=project,
        package_version_tag=str(version),
        py_version_tag=py_tag,
        abi_tag=abi_tag,
        platform_tag=platform_tag,
        dependencies=pip_dependencies(raw.get("requires_dist", [])),
        requires_python=raw.get("requires_python"),
    )
    return WheelInfo(path, state, project, version, version_text)


def _check_override(wheel: WheelInfo, package: str | None, version: str | None) -> None:
    if package is not None and package != wheel.project:
        raise BadInput(f"{wheel.path}: a wheel of {wheel.project}, not --package {package}")
    if version is not None and _version(version) != wheel.version:
        raise BadInput(f"{wheel.path}: a wheel of version {wheel.version}, not --version {version}")


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _measure(path: Path) -> tuple[int, str]:
    """Size and SHA256 of *path*, read once, a block at a time (wheels can be large)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as file:
            while block := file.read(_BLOCK):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    return size, digest.hexdigest()


def _delete(group: list[WheelInfo]) -> None:
    for wheel in group:
        try:
            wheel.path.unlink()
        except OSError as exc:
            # The import itself succeeded: say so, but do not fail it.
            print(f"piw-import: cannot delete {wheel.path}: {exc.strerror}", file=sys.stderr)


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"
