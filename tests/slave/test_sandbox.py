"""The sandbox builds run in: a throwaway HOME, a whole tree killed, and (with bubblewrap) the
slave's own files hidden and nothing written outside the build's directory."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from piwheels.slave.interpreter import Interpreter
from piwheels.slave.sandbox import (
    BubblewrapSandbox,
    PlainSandbox,
    RunResult,
    Sandbox,
    bubblewrap_works,
    make_sandbox,
    remove_tree,
)
from slave.processes import processes_with_env

REPO = Path(__file__).resolve().parents[2]

needs_bwrap = pytest.mark.skipif(
    not bubblewrap_works(),
    reason="bubblewrap (bwrap) is not installed or cannot create namespaces on this host; "
    "these properties hold only inside its sandbox",
)


SANDBOXES = [
    pytest.param(BubblewrapSandbox, id="bubblewrap", marks=needs_bwrap),
    pytest.param(PlainSandbox, id="plain"),
]


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    path = tmp_path / "work" / "build-1"
    path.mkdir(parents=True)
    return path


def run_python(
    sandbox: Sandbox,
    python: Interpreter,
    build_dir: Path,
    code: str,
    *,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> RunResult:
    return sandbox.run(
        [str(python.path), "-c", code],
        build_dir=build_dir,
        readable=python.prefixes,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("kind", SANDBOXES)
def test_home_is_throwaway(
    kind: type[Sandbox], host_python: Interpreter, build_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://not-for-builds.invalid/")
    monkeypatch.setenv("PIWTEST_SECRET", "slave-only")
    name = f".piwtest-{uuid.uuid4().hex}"
    code = (
        "import os, pathlib, sys\n"
        f"(pathlib.Path.home() / {name!r}).write_text('x')\n"
        "print('HOME=' + os.environ['HOME'])\n"
        "print('VARS=' + ','.join(sorted(os.environ)))\n"
        "print('STDIN=' + repr(sys.stdin.read()))\n"
    )
    result = run_python(kind(), host_python, build_dir, code, env={"PIWTEST_OURS": "1"})
    assert result.returncode == 0, result.output
    assert f"HOME={build_dir / 'home'}" in result.output
    assert (build_dir / "home" / name).is_file()
    assert not (Path.home() / name).exists()
    names = result.output.split("VARS=")[1].split()[0].split(",")
    assert "PIWTEST_OURS" in names
    assert not [n for n in names if n.startswith("PIP_") or n == "PIWTEST_SECRET"]
    assert "STDIN=''" in result.output
    remove_tree(build_dir)
    assert not build_dir.exists()


TREE = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL will do
child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
subprocess.Popen([sys.executable, "-c", child])
subprocess.Popen([sys.executable, "-c", child], start_new_session=True)  # leaves our group
open("ready", "w").close()
print("tree started", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("kind", SANDBOXES)
def test_timeout_kills_tree_ignoring_sigterm(
    kind: type[Sandbox], host_python: Interpreter, build_dir: Path
) -> None:
    tag = f"PIWTEST_TREE={uuid.uuid4().hex}"
    started = time.monotonic()
    result = run_python(
        kind(grace=0.5), host_python, build_dir, TREE, timeout=2, env=dict([tag.split("=")])
    )
    assert result.killed is not None
    assert "timeout" in result.killed
    assert "tree started" in result.output
    assert time.monotonic() - started < 10
    assert processes_with_env(tag) == {}


@pytest.mark.parametrize("kind", SANDBOXES)
def test_kill_sandboxed_process_from_another_thread(
    kind: type[Sandbox], host_python: Interpreter, build_dir: Path
) -> None:
    tag = f"PIWTEST_TREE={uuid.uuid4().hex}"
    process = kind(grace=0.5).start(
        [str(host_python.path), "-c", TREE],
        build_dir=build_dir,
        env=dict([tag.split("=")]),
        readable=host_python.prefixes,
    )
    results: list[RunResult] = []
    waiter = threading.Thread(target=lambda: results.append(process.communicate(60)))
    waiter.start()
    deadline = time.monotonic() + 20
    while not (build_dir / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill("stopped by the test")
    waiter.join(20)
    assert results
    assert results[0].killed == "stopped by the test"
    assert processes_with_env(tag) == {}


@pytest.fixture
def slave_dirs() -> Iterator[tuple[Path, Path]]:
    """A 'work' directory and a 'config' file of the slave, outside the default hidden paths."""
    base = REPO / ".cache" / f"piwtest-slave-{uuid.uuid4().hex}"
    (base / "work").mkdir(parents=True)
    (base / "work" / "secret.txt").write_text("slave secret")
    (base / "etc").mkdir()
    (base / "etc" / "slave.conf").write_text("password = hunter2")
    yield base / "work", base / "etc" / "slave.conf"
    remove_tree(base)


@needs_bwrap
def test_bwrap_hides_the_slaves_files(
    host_python: Interpreter, build_dir: Path, slave_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    work, config = slave_dirs
    marker = tmp_path / "marker"  # under /tmp, hidden by default
    marker.write_text("x")
    code = (
        "import os, pathlib\n"
        f"print('WORK', os.listdir({str(work)!r}))\n"
        f"print('CONFIG', repr(pathlib.Path({str(config)!r}).read_text()))\n"
        f"print('MARKER', os.path.exists({str(marker)!r}))\n"
        "print('ROOT', os.listdir('/root'))\n"
        "print('PIDS', len([p for p in os.listdir('/proc') if p.isdigit()]))\n"
    )
    sandbox = BubblewrapSandbox(hide=[work, config])
    result = run_python(sandbox, host_python, build_dir, code)
    assert result.returncode == 0, result.output
    assert "WORK []" in result.output
    assert "CONFIG ''" in result.output
    assert "MARKER False" in result.output
    # Only the mount point of the interpreter re-shown read-only remains of /root.
    assert "ROOT" in result.output
    assert "hunter2" not in result.output
    # A PID namespace of its own: bwrap's init, python, nothing of the host's.
    pids = int(result.output.split("PIDS ")[1].split()[0])
    assert pids <= 3


@needs_bwrap
def test_bwrap_cannot_write_outside_build_dir(
    host_python: Interpreter, build_dir: Path, slave_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = slave_dirs
    suffix = uuid.uuid4().hex
    targets = [
        work.parent / f"escape-{suffix}",  # visible, read-only
        tmp_path / f"escape-{suffix}",  # /tmp: a fresh tmpfs inside
        build_dir.parent / f"sibling-{suffix}",  # the work root: hidden
        Path(f"/etc/escape-{suffix}"),
        Path(f"/usr/local/escape-{suffix}"),
        Path(host_python.prefixes[0]) / f"escape-{suffix}",  # the interpreter: read-only
    ]
    code = (
        "import sys\n"
        "for target in sys.argv[1:]:\n"
        "    try:\n"
        "        open(target, 'w').write('x')\n"
        "    except OSError as exc:\n"
        "        print('refused', target, exc.strerror)\n"
        "open('inside.txt', 'w').write('x')\n"
    )
    result = BubblewrapSandbox().run(
        [str(host_python.path), "-c", code, *map(str, targets)],
        build_dir=build_dir,
        readable=host_python.prefixes,
        timeout=30,
    )
    assert result.returncode == 0, result.output
    assert (build_dir / "inside.txt").is_file()
    assert [t for t in targets if t.exists()] == []


def test_make_sandbox_prefers_bubblewrap() -> None:
    expected = BubblewrapSandbox if bubblewrap_works() else PlainSandbox
    assert type(make_sandbox()) is expected
