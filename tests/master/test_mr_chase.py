"""Mr. Chase in a running master: imports, removals, rebuilds and the operators' repairs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import MasterThread, ScriptedSlave, build_result, configure, file_state, rows, wait_for
from piwheels import protocols
from piwheels.cli.importer import importer_keys
from piwheels.master_support.config import MasterConfig
from piwheels.protocols import NO_DATA
from piwheels.transport import Socket
from pypi_index import LocalPyPI, make_wheel

QUEUE = "SELECT v.version, q.abi_tag FROM build_queue q JOIN versions v USING (version_id)"


class Tool:
    """The REQ end a piw-* tool uses."""

    def __init__(self, config: MasterConfig) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.sock = Socket(zmq.REQ, reversed(protocols.mr_chase), context=self.context)
        self.sock.connect(config.import_queue)

    def ask(self, action: str, data: Any = NO_DATA) -> tuple[str, Any]:
        self.sock.send(action, data)
        assert self.sock.poll(20_000), f"no reply to {action}"
        return self.sock.recv()

    def close(self) -> None:
        self.sock.close()
        self.context.term()


@pytest.fixture
def config(master_dsn: str, tmp_path: Path, pypi_index: LocalPyPI) -> MasterConfig:
    return configure(master_dsn, tmp_path, pypi_index, ["cp39", "cp311"], packages=["piwtest-pure"])


@pytest.fixture
def tool(config: MasterConfig) -> Iterator[Tool]:
    master = MasterThread(config).start()
    wait_for(lambda: rows(config.dsn, QUEUE), what="the catalogue")
    client = Tool(config)
    yield client
    client.close()
    master.stop()


def import_request(wheel: Path, **overrides: Any) -> tuple[Any, ...]:
    state = file_state(wheel.name, wheel.read_bytes())
    request = {"package": "piwtest-pure", "version": "1.0", "abi": None, "files": [state]}
    request.update(overrides)
    return (
        0,
        request["package"],
        request["version"],
        request["abi"],
        True,
        timedelta(0),
        "imported by a test",
        request["files"],
    )


def test_import_a_wheel(config: MasterConfig, tool: Tool, tmp_path: Path) -> None:
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels")
    assert tool.ask("IMPORT", import_request(wheel)) == ("SEND", wheel.name)
    assert config.key_dir is not None
    sender = ScriptedSlave(config, keys=importer_keys(config.key_dir))  # as piw-import sends
    sender.slave_id = 0  # the id imports use on the file queue
    try:
        assert sender.send_file(wheel.read_bytes()) == "DONE"
    finally:
        sender.close()
    assert tool.ask("SENT") == ("DONE", NO_DATA)
    published = config.output_path / "simple" / "piwtest-pure" / wheel.name
    assert (
        hashlib.sha256(published.read_bytes()).digest()
        == hashlib.sha256(wheel.read_bytes()).digest()
    )
    assert rows(config.dsn, "SELECT abi_tag, built_by, status FROM builds") == [("cp39", 0, True)]
    assert rows(config.dsn, QUEUE) == []  # a none wheel: nothing left to build
    index = config.output_path / "simple" / "piwtest-pure" / "index.json"
    wait_for(lambda: index.exists() and wheel.name in index.read_text(), what="the index")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"version": "9.9"}, "no such version: piwtest-pure 9.9"),
        ({"package": "nope"}, "no such version: nope 1.0"),
        ({"abi": "cp27mu"}, "not one of this farm's ABIs"),
        ({"files": "other"}, "not piwtest-pure"),
    ],
)
def test_bad_imports_are_refused(
    tool: Tool, tmp_path: Path, overrides: dict[str, Any], error: str
) -> None:
    wheel = make_wheel("piwtest-pure", "1.0", tmp_path / "wheels")
    if overrides.get("files") == "other":
        other = make_wheel("piwtest-cext", "1.0", tmp_path / "other")
        overrides["files"] = [file_state(other.name, other.read_bytes())]
    action, message = tool.ask("IMPORT", import_request(wheel, **overrides))
    assert action == "ERROR"
    assert error in message


def publish_a_wheel(config: MasterConfig) -> str:
    """Build piwtest-pure 1.0 for cp39 on a scripted slave, whose wheel is published."""
    slave = ScriptedSlave(config, abi="cp39")
    content = b"wheel bytes"
    name = "piwtest_pure-1.0-cp39-cp39-linux_x86_64.whl"
    try:
        slave.hello()
        slave.wait_for_build()
        assert slave.request("BUILT", build_result(file_state(name, content)))[0] == "SEND"
        slave.send_file(content)
        assert slave.request("SENT")[0] == "DONE"
    finally:
        slave.close()
    return name


def test_remove_with_and_without_skip(config: MasterConfig, tool: Tool) -> None:
    name = publish_a_wheel(config)
    wheel = config.output_path / "simple" / "piwtest-pure" / name
    assert wheel.exists()
    assert rows(config.dsn, QUEUE) == [("1.0", "cp311")]
    # without a reason: the builds go, and the version is queued again from the lowest ABI
    assert tool.ask("REMOVE", ("piwtest-pure", "1.0", "")) == ("DONE", NO_DATA)
    assert not wheel.exists()
    assert rows(config.dsn, QUEUE) == [("1.0", "cp39")]
    # with one: never built again
    assert tool.ask("REMOVE", ("piwtest-pure", "1.0", "breaks the builders"))[0] == "DONE"
    assert rows(config.dsn, QUEUE) == []
    assert rows(config.dsn, "SELECT skip FROM versions WHERE version = '1.0'") == [
        ("breaks the builders",)
    ]
    assert tool.ask("REMOVE", ("piwtest-pure", "7.0", "")) == (
        "ERROR",
        "no such version: piwtest-pure 7.0",
    )


def test_a_removed_version_leaves_nothing_in_the_withheld_directory(
    config: MasterConfig, tool: Tool
) -> None:
    name = publish_a_wheel(config)
    # withheld (a cross-check's doubt, PyPI's removal): out of the index, kept aside
    served = config.output_path / "simple" / "piwtest-pure"
    held = config.withheld_dir / "piwtest-pure"
    held.mkdir(parents=True)
    for path in served.glob(f"{name}*"):
        path.rename(held / path.name)
    assert list(held.iterdir())
    assert tool.ask("REMOVE", ("piwtest-pure", "1.0", "")) == ("DONE", NO_DATA)
    assert not list(held.iterdir())


def test_rebuild(config: MasterConfig, tool: Tool) -> None:
    for request in (("HOME", None), ("SEARCH", None), ("BOTH", "piwtest-pure"), ("PROJECT", None)):
        assert tool.ask("REBUILD", request) == ("DONE", NO_DATA)
    assert tool.ask("REBUILD", ("BOTH", "nope")) == ("ERROR", "no such package: nope")
    assert tool.ask("REBUILD", ("EVERYTHING", None))[0] == "ERROR"
    page = config.output_path / "project" / "piwtest-pure" / "index.html"
    wait_for(page.exists, what="the project page")
    wait_for((config.output_path / "index.html").exists, what="the home page")


def test_add_skip_yank_retry(config: MasterConfig, tool: Tool) -> None:
    assert tool.ask("ADD", ("piwtest-pure", "3.0", "")) == ("DONE", NO_DATA)
    assert ("3.0", "cp39") in rows(config.dsn, QUEUE)
    assert tool.ask("SKIP", ("piwtest-pure", "3.0", "not on PyPI"))[0] == "DONE"
    assert ("3.0", "cp39") not in rows(config.dsn, QUEUE)
    assert tool.ask("SKIP", ("piwtest-pure", "3.0", ""))[0] == "DONE"  # unskip
    assert ("3.0", "cp39") in rows(config.dsn, QUEUE)
    assert tool.ask("YANK", ("piwtest-pure", "3.0", True))[0] == "DONE"
    assert ("3.0", "cp39") not in rows(config.dsn, QUEUE)
    assert tool.ask("YANK", ("piwtest-pure", "3.0", False))[0] == "DONE"
    assert tool.ask("RETRY", ("piwtest-pure", "3.0", None)) == (
        "ERROR",
        "no failed build of piwtest-pure 3.0 to retry",
    )
    # let the Slave Driver's picture of the queue catch up with the unyank
    time.sleep(3 * config.queue_interval)
    slave = ScriptedSlave(config, abi="cp39")
    try:
        slave.hello()
        assert slave.wait_for_build() == ("piwtest-pure", "3.0")  # newest release first
        assert slave.request("BUILT", build_result(status=False))[0] == "DONE"
    finally:
        slave.close()
    assert ("3.0", "cp311") in rows(config.dsn, QUEUE)
    assert tool.ask("RETRY", ("piwtest-pure", "3.0", "cp39")) == ("DONE", NO_DATA)
    assert ("3.0", "cp39") in rows(config.dsn, QUEUE)
    assert tool.ask("SKIP", ("nope", None, "x")) == ("ERROR", "no such package: nope")


def test_malformed_request_gets_an_error(tool: Tool) -> None:
    tool.sock.zsock.send(b"\xff\xfe")
    assert tool.sock.poll(10_000)
    action, message = tool.sock.recv()
    assert action == "ERROR" and "malformed request" in message
