"""The local queues are the master's user's alone (#19): their ipc sockets live in a directory
only that user can enter, and another local user cannot reach the control queue."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from farm import MasterThread, wait_for
from piwheels.master import PiwMaster
from piwheels.master_support.config import MasterConfig
from piwheels.master_support.local_queues import local_queue_problem, socket_directory_problem

ROOT = os.geteuid() == 0
NOBODY = 65534


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter, as /tmp is (pytest's own are 700)."""
    path = Path(tempfile.mkdtemp(prefix="piwtest-local-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_a_missing_directory_is_made_for_this_user_only(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/sockets/control"
    assert socket_directory_problem(address) is None
    assert (tmp_path / "sockets").stat().st_mode & 0o777 == 0o700
    assert socket_directory_problem(address) is None  # and taken as it is next time


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o1777])
def test_a_directory_open_to_others_is_refused(open_dir: Path, mode: int) -> None:
    directory = open_dir / "sockets"
    directory.mkdir()
    directory.chmod(mode)
    problem = socket_directory_problem(f"ipc://{directory}/control")
    assert problem is not None
    assert f"{directory} (of ipc://{directory}/control) is open to other users" in problem


def test_the_old_default_in_tmp_is_refused() -> None:
    assert "is open to other users" in str(socket_directory_problem("ipc:///tmp/piw-control"))


@pytest.mark.skipif(not ROOT, reason="only root can give a directory to another user")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    os.chown(directory, NOBODY, NOBODY)
    problem = socket_directory_problem(f"ipc://{directory}/control")
    assert f"{directory} (of ipc://{directory}/control) belongs to another user" in str(problem)


def test_a_link_or_a_file_is_no_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert "is not a directory" in str(socket_directory_problem(f"ipc://{tmp_path}/link/x"))
    (tmp_path / "file").write_text("")
    assert socket_directory_problem(f"ipc://{tmp_path}/file/x") is not None


def test_abstract_sockets_are_refused_and_tcp_is_the_operators_choice() -> None:
    assert "abstract socket" in str(socket_directory_problem("ipc://@piw-control"))
    assert socket_directory_problem("tcp://127.0.0.1:5557") is None
    assert socket_directory_problem("inproc://control") is None


def test_a_master_with_an_open_queue_directory_does_not_start(
    farm_config: MasterConfig, open_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = replace(farm_config, control_queue=f"ipc://{open_dir}/control")
    assert local_queue_problem(config) is not None
    assert PiwMaster(config).run() == 1
    assert f"refusing --control-queue: {open_dir} (of ipc://{open_dir}/control)" in caplog.text
    assert not (open_dir / "control").exists()


# Run as another user: connect to the control queue and ask the master to stop.
_INTRUDER = """
import socket, sys, zmq
path = sys.argv[1]
try:
    socket.socket(socket.AF_UNIX).connect(path)
except PermissionError:
    print("denied")
else:
    print("connected")
push = zmq.Context().socket(zmq.PUSH)
push.connect("ipc://" + path)
push.send(b"\\x64QUIT")
push.close(linger=1000)
"""


@pytest.mark.skipif(not ROOT, reason="needs another user to run as (setpriv as root)")
def test_another_local_user_cannot_reach_the_control_queue(
    farm_config: MasterConfig, open_dir: Path
) -> None:
    """Even under a umask that would make the socket file anyone's (0), the directory keeps
    another user out: the raw connect is refused, and the master never hears the QUIT."""
    sockets = open_dir / "piwheels"
    config = replace(
        farm_config,
        control_queue=f"ipc://{sockets}/control",
        status_queue=f"ipc://{sockets}/status",
        import_queue=f"ipc://{sockets}/import",
    )
    old = os.umask(0)
    try:
        master = MasterThread(config).start()
        wait_for((sockets / "control").exists, timeout=30, what="the control queue")
    finally:
        os.umask(old)
    try:
        assert sockets.stat().st_mode & 0o777 == 0o700
        intruder = subprocess.run(
            [
                *("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"),
                *(sys.executable, "-c", _INTRUDER, str(sockets / "control")),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert intruder.stdout.split()[:1] == ["denied"], intruder.stderr
        assert master.thread.is_alive()
    finally:
        assert master.stop() == 0
