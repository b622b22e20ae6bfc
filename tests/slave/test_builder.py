"""The slave's building half, with real pip builds of real sdists served on 127.0.0.1.

Nothing is mocked: interpreters are pyenv's, builds run pip in the sandbox the slave would use,
and "no process survives" is checked in /proc.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from piwheels.records.builds import BuildResult, Dependency, FileState
from piwheels.slave.build import Build
from piwheels.slave.builder import Builder
from piwheels.slave.inspection import apt_dependencies
from piwheels.slave.interpreter import Interpreter, InterpreterError, inspect_interpreter
from piwheels.slave.limits import Limits
from piwheels.slave.sandbox import (
    BubblewrapSandbox,
    PlainSandbox,
    RunResult,
    Sandbox,
    bubblewrap_works,
    make_sandbox,
    remove_tree,
)
from pypi_index import DEFAULT_CATALOGUE, LocalPyPI, SdistFactory

REPO = Path(__file__).resolve().parents[2]
BROKEN_MESSAGE = "piwtest-broken: this package always fails to build"

needs_bwrap = pytest.mark.skipif(
    not bubblewrap_works(),
    reason="bubblewrap (bwrap) is not installed or cannot create namespaces on this host; "
    "these properties hold only inside its sandbox",
)


# -- helpers -------------------------------------------------------------------------------------


def processes_with_env(entry: str) -> dict[int, bytes]:
    """pid -> command line of every live process whose environment holds *entry* (NAME=value)."""
    wanted = entry.encode()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # A zombie's environ reads empty: only processes still running match.
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes()
        except OSError:
            continue
    return found


def build_processes(build: Build) -> dict[int, bytes]:
    # Every process of a build inherits the throwaway HOME, wherever it runs.
    return processes_with_env(f"HOME={build.build_dir / 'home'}")


def watch_processes(build: Build, until: Callable[[dict[int, bytes]], bool]) -> dict[int, bytes]:
    """Sample the build's processes until *until* says so or it ends; all seen, by pid."""
    seen: dict[int, bytes] = {}
    deadline = time.monotonic() + 60
    while build.is_alive() and time.monotonic() < deadline:
        current = build_processes(build)
        seen.update(current)
        if until(current):
            break
        time.sleep(0.05)
    return seen


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(
    test_sdists: SdistFactory, build_deps_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalPyPI]:
    """One index for the module (the function-scoped ``pypi_index`` would restart per test)."""
    work_dir = tmp_path_factory.mktemp("index")
    with LocalPyPI(sdists=test_sdists, build_deps=build_deps_dir, work_dir=work_dir) as served:
        served.add_catalogue([*DEFAULT_CATALOGUE, ("piwtest-slow", "1.0", None)])
        yield served


@pytest.fixture(scope="module")
def py311(python311: Path) -> Interpreter:
    return inspect_interpreter(python311)


@pytest.fixture(scope="module")
def py39(python39: Path) -> Interpreter:
    return inspect_interpreter(python39)


@pytest.fixture(scope="module")
def host_python() -> Interpreter:
    """The interpreter running the tests, for small commands inside a sandbox."""
    return inspect_interpreter(Path(sys.executable))


def make_builder(
    interpreter: Interpreter,
    index: LocalPyPI,
    work_root: Path,
    *,
    timeout: float = 120,
    sandbox: Sandbox | None = None,
    limits: Limits | None = None,
) -> Builder:
    return Builder(
        interpreter,
        index.simple_url,
        timedelta(seconds=timeout),
        work_root,
        sandbox or make_sandbox(grace=1.0),
        limits=limits,
    )


@pytest.fixture(scope="module")
def batch(
    index: LocalPyPI,
    py311: Interpreter,
    py39: Interpreter,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Build]]:
    """The ordinary builds, run at the same time (they mostly wait on pip), finished."""
    work_root = tmp_path_factory.mktemp("work")
    b311 = make_builder(py311, index, work_root)
    b39 = make_builder(py39, index, work_root)
    builds = {
        "pure": b311.start("piwtest-pure", "1.0"),
        "pure-again": b311.start("piwtest-pure", "1.0"),
        "cext": b311.start("piwtest-cext", "1.0"),
        "abi3": b311.start("piwtest-abi3", "1.0"),
        "broken": b311.start("piwtest-broken", "1.0"),
        "cext39": b39.start("piwtest-cext", "1.0"),
        "py311on39": b39.start("piwtest-py311", "1.0"),
    }
    for build in builds.values():
        assert build.wait(180)
    yield builds
    for build in builds.values():
        build.cleanup()


def only_file(result: BuildResult) -> FileState:
    assert result.status, result.output
    assert len(result.files) == 1, result.output
    return result.files[0]


def assert_describes(build: Build, state: FileState) -> None:
    path = build.wheel_path(state.filename)
    assert state.filesize == path.stat().st_size
    assert state.filehash == sha256(path)


# -- interpreters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "version", "tag"), [("python39", "3.9", "39"), ("python311", "3.11", "311")]
)
def test_interpreter_tags(
    request: pytest.FixtureRequest, fixture: str, version: str, tag: str
) -> None:
    python: Path = request.getfixturevalue(fixture)
    interpreter = inspect_interpreter(python)
    assert interpreter.path == python
    assert interpreter.version.startswith(f"{version}.")
    assert interpreter.py_version_tag == tag
    assert interpreter.abi_tag == f"cp{tag}"
    assert interpreter.platform_tag == f"linux_{os.uname().machine}"
    assert interpreter.pip_version[0].isdigit()
    assert any(python.is_relative_to(prefix) for prefix in interpreter.prefixes)


def test_interpreter_with_a_new_pip_reports_the_plain_platform() -> None:
    # pip 26's vendored packaging lists manylinux tags last; a local build is still linux_*
    interpreter = inspect_interpreter(Path(sys.executable))
    assert interpreter.platform_tag == f"linux_{os.uname().machine}"


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing", lambda tmp: Path("/bin/true")])
def test_interpreter_rejects_non_python(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    path = make(tmp_path)
    with pytest.raises(InterpreterError) as info:
        inspect_interpreter(path)
    assert repr(str(path)) in str(info.value)


# -- builds --------------------------------------------------------------------------------------


def test_pure_build(batch: dict[str, Build], py311: Interpreter) -> None:
    build = batch["pure"]
    state = only_file(build.result)
    assert state.filename == "piwtest_pure-1.0-py3-none-any.whl"
    assert (state.package_tag, state.package_version_tag) == ("piwtest-pure", "1.0")
    assert (state.py_version_tag, state.abi_tag, state.platform_tag) == ("py3", "none", "any")
    assert state.requires_python == ">=3.8"
    assert state.dependencies == {Dependency("pip", "piwtest-cext")}
    assert_describes(build, state)
    assert build.result.duration > timedelta(0)
    # The log says what ran and how it ended, around pip's own output.
    assert "--no-binary=piwtest-pure" in build.result.output
    assert "Successfully built piwtest-pure" in build.result.output
    assert "build succeeded" in build.result.output


def test_cext_build(batch: dict[str, Build], py311: Interpreter) -> None:
    build = batch["cext"]
    state = only_file(build.result)
    assert (state.py_version_tag, state.abi_tag) == ("cp311", "cp311")
    assert state.platform_tag == py311.platform_tag
    assert state.filename == f"piwtest_cext-1.0-cp311-cp311-{py311.platform_tag}.whl"
    assert_describes(build, state)
    assert {d.tool for d in state.dependencies} <= {"apt"}
    # It calls only the Python C API, so the linker may leave out even libc (it does here).
    assert {d.package for d in state.dependencies} <= {"libc6"}


@pytest.mark.skipif(not shutil.which("dpkg"), reason="apt dependencies need dpkg (Debian)")
@pytest.mark.skipif(
    not getattr(zlib, "__file__", "").endswith(".so"), reason="zlib is built into this Python"
)
@pytest.mark.parametrize("bundled", [False, True])
def test_apt_dependencies(host_python: Interpreter, tmp_path: Path, bundled: bool) -> None:
    # The interpreter's own zlib module links to the system's libz and libc: a real extension
    # with known system dependencies, packed into a wheel. A wheel that bundles its own libz
    # (as auditwheel does) must not report zlib1g.
    module = Path(zlib.__file__)
    wheel = tmp_path / "piwtest_sys-1.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(module, f"piwtest_sys/{module.name}")
        if bundled:
            archive.write(module, "piwtest_sys.libs/libz.so.1")
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    sandbox = make_sandbox()

    def ldd(argv: Sequence[str]) -> str:
        return sandbox.run(argv, build_dir=build_dir, timeout=30).output

    found = apt_dependencies(wheel, build_dir / "scan", ldd)
    expected = {"libc6"} if bundled else {"zlib1g", "libc6"}
    assert found == {Dependency("apt", package) for package in expected}


def test_cext_build_with_older_pip(batch: dict[str, Build], py39: Interpreter) -> None:
    build = batch["cext39"]
    state = only_file(build.result)
    assert (state.py_version_tag, state.abi_tag) == ("cp39", "cp39")
    assert_describes(build, state)


def test_abi3_build(batch: dict[str, Build], py311: Interpreter) -> None:
    build = batch["abi3"]
    state = only_file(build.result)
    assert (state.py_version_tag, state.abi_tag, state.platform_tag) == (
        "cp39",
        "abi3",
        py311.platform_tag,
    )
    assert state.requires_python == ">=3.9"
    assert_describes(build, state)


def test_broken_build_fails_with_its_message(batch: dict[str, Build]) -> None:
    result = batch["broken"].result
    assert not result.status
    assert result.files == []
    assert BROKEN_MESSAGE in result.output
    assert "build failed" in result.output


def test_requires_python_refused_by_older_interpreter(batch: dict[str, Build]) -> None:
    result = batch["py311on39"].result
    assert not result.status
    assert result.files == []
    assert ">=3.11" in result.output


def test_wheel_path_only_serves_reported_files(batch: dict[str, Build]) -> None:
    build = batch["pure"]
    with pytest.raises(KeyError):
        build.wheel_path("../../etc/passwd")


def test_cleanup_removes_everything(batch: dict[str, Build]) -> None:
    build = batch["pure-again"]
    wheel = build.wheel_path(only_file(build.result).filename)
    assert wheel.is_file()
    # Only the wheels are kept once the build is over: HOME and TMPDIR went at once.
    assert [p.name for p in build.build_dir.iterdir()] == ["out"]
    build.cleanup()
    assert not build.build_dir.exists()
    build.cleanup()  # twice is harmless


def test_invalid_request_fails_without_running_pip(
    index: LocalPyPI, py311: Interpreter, tmp_path: Path
) -> None:
    build = make_builder(py311, index, tmp_path).start("--index-url=http://evil/", "1.0")
    assert build.wait(10)
    assert not build.result.status
    assert "not a valid project name" in build.result.output
    assert "running:" not in build.result.output


def test_timeout_kills_whole_tree(index: LocalPyPI, py311: Interpreter, tmp_path: Path) -> None:
    # piwtest-slow sleeps 8 s in its build step: far past this timeout.
    builder = make_builder(py311, index, tmp_path, timeout=4)
    build = builder.start("piwtest-slow", "1.0")
    seen = watch_processes(build, lambda _: False)
    assert build.wait(30)
    result = build.result
    assert not result.status
    assert "exceeded its timeout of 4 seconds" in result.output
    assert result.duration < timedelta(seconds=15)
    assert len(seen) > 1, "the build never had child processes to kill"
    assert build_processes(build) == {}
    build.cleanup()


@pytest.mark.parametrize("kind", ["bubblewrap", "plain"])
def test_kill_from_another_thread(
    index: LocalPyPI, py311: Interpreter, tmp_path: Path, kind: str
) -> None:
    if kind == "bubblewrap" and not bubblewrap_works():
        pytest.skip("bubblewrap (bwrap) is not installed or cannot create namespaces here")
    sandbox = BubblewrapSandbox(grace=1.0) if kind == "bubblewrap" else PlainSandbox(grace=1.0)
    build = make_builder(py311, index, tmp_path, sandbox=sandbox).start("piwtest-slow", "1.0")
    # Wait until pip runs the build backend in a process of its own: a tree, mid-build.
    seen = watch_processes(build, lambda now: any(b"_in_process" in c for c in now.values()))
    assert any(b"_in_process" in cmdline for cmdline in seen.values()), seen
    killer = threading.Thread(target=build.kill)
    killer.start()
    killer.join()
    assert build.wait(30)
    assert not build.result.status
    assert "the build was cancelled" in build.result.output
    assert build_processes(build) == {}
    build.cleanup()
    assert not build.build_dir.exists()


# -- the sandbox itself --------------------------------------------------------------------------


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
