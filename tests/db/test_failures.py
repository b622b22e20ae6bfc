"""A failed build's cause and outcome (failed, dep-wait, give-back), against a real PostgreSQL:
what is recorded, what the pages read, and how each outcome comes back to the queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from test_queue import version

from piwheels.abis import sorted_abis
from piwheels.db.builds import GiveBack
from piwheels.db.database import Database
from piwheels.db.project_rows import ProjectUpdate
from piwheels.diagnosis import classify
from piwheels.failures import Cause, Diagnosis, Want
from piwheels.records.builds import BuildResult, BuildState, Dependency, FileState
from piwheels.web.pages import project_page

LOGS = Path(__file__).resolve().parents[1] / "slave" / "failure_logs"


def failed(log: str, diagnosis: Diagnosis | None = None) -> BuildResult:
    return BuildResult(False, timedelta(seconds=7), log, [], diagnosis)


def saved(case: str) -> str:
    """A real build's log: of a test project (tests/slave/test_failure_logs.py made them), or
    of a real project from PyPI ("pypi-NAME", from a farm following PyPI)."""
    if case.startswith("pypi-"):
        return (LOGS / "pypi" / f"{case.removeprefix('pypi-')}.txt").read_text()
    return (LOGS / f"{case}.txt").read_text()


def cp39(db: Database) -> list[tuple[str, str]]:
    return db.get_queue(1000).heads["cp39"]


def standing(db: Database, package: str) -> list[tuple[object, ...]]:
    return db.conn.execute(
        "SELECT b.abi_tag, b.outcome, b.cause, b.needs, b.waits_for, b.requeued_at IS NOT NULL "
        "FROM builds b JOIN versions v USING (version_id) WHERE v.package = %s "
        "ORDER BY b.build_id",
        (package,),
    ).fetchall()


@pytest.fixture
def farm(db: Database) -> Database:
    db.set_build_abis(sorted_abis(["cp39"]))
    db.give_back = GiveBack(tries=3, delay=timedelta(minutes=10))
    return db


def test_a_missing_header_waits_for_its_debian_package(farm: Database) -> None:
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    log = saved("header")
    slave_says = classify(log, "foo", "1.0")._replace(needs=("portaudio19-dev",))
    db.log_build(1, "foo", "1.0", "cp39", failed(log, slave_says))
    assert standing(db, "foo") == [
        ("cp39", "dep-wait", "missing-header", ["portaudio19-dev"], None, False)
    ]
    assert ("foo", "1.0") not in cp39(db)
    project = db.get_project_data("foo")
    assert project is not None
    cell = project.versions[0].cells["cp39"]
    assert cell.state == BuildState.DEP_WAIT
    assert cell.reason == "needs portaudio19-dev on the cp39 builders"
    assert "portaudio.h" in project.versions[0].builds[0].summary
    # installed on another ABI's builders: nothing moves; on these: built again
    assert db.debian_installed("portaudio19-dev", "cp311") == []
    assert db.debian_installed("libother-dev", None) == []
    assert len(db.debian_installed("portaudio19-dev", "cp39")) == 1
    assert ("foo", "1.0") in cp39(db)
    project = db.get_project_data("foo")
    assert project is not None
    assert project.versions[0].cells["cp39"].state == BuildState.PENDING
    assert project.versions[0].builds[0].requeued  # the attempt stays on record


def test_a_slave_that_does_not_say_leaves_the_header_failed(farm: Database) -> None:
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("header")))  # the original slave's way
    assert standing(db, "foo") == [("cp39", "failed", "missing-header", [], None, False)]
    project = db.get_project_data("foo")
    assert project is not None
    summary = project.versions[0].builds[0].summary
    assert "the builder did not say which Debian package provides it" in summary


def test_a_slave_claiming_another_cause_is_not_believed(farm: Database) -> None:
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    lie = Diagnosis(Cause.NETWORK, "the network", (), ("evil-package",))
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("header"), lie))
    assert standing(db, "foo") == [("cp39", "failed", "missing-header", [], None, False)]


def test_a_build_requirement_waits_for_a_release_that_satisfies_it(farm: Database) -> None:
    db = farm
    db.set_project("piwtest-helper", "piwtest-helper", 1, "", "", [version("1.0")])
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("requirement")))
    assert standing(db, "foo") == [
        ("cp39", "dep-wait", "build-requirement", [], "piwtest-helper", False)
    ]
    project = db.get_project_data("foo")
    assert project is not None
    assert project.versions[0].cells["cp39"].reason == "waits for piwtest-helper>=2 on PyPI"
    # releases that do not satisfy it: a pre-release, a yanked one, one with no files
    db.set_project(
        "piwtest-helper",
        "piwtest-helper",
        2,
        "",
        "",
        [
            version("1.0"),
            version("2.0b1"),
            version("2.1", yanked=True),
            version("3.0", days_ago=None, has_sdist=False),
        ],
    )
    assert ("foo", "1.0") not in cp39(db)
    db.set_project("piwtest-helper", "piwtest-helper", 3, "", "", [version("1.0"), version("2.0")])
    assert ("foo", "1.0") in cp39(db)
    assert standing(db, "foo")[0][-1] is True


def test_a_passing_cause_is_given_back_with_a_growing_delay_then_failed(
    farm: Database, superuser_dsn: str
) -> None:
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    before = datetime.now(UTC)
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("network")))
    assert standing(db, "foo") == [("cp39", "give-back", "network", [], None, False)]
    project = db.get_project_data("foo")
    assert project is not None
    [attempt] = project.versions[0].builds
    assert attempt.retry_at is not None
    assert timedelta(minutes=9) < attempt.retry_at - before < timedelta(minutes=11)
    assert project.versions[0].cells["cp39"].state == BuildState.GIVE_BACK
    assert db.requeue_given_back() == []  # not yet
    assert ("foo", "1.0") not in cp39(db)
    statistics = db.get_statistics()._asdict()
    assert statistics["failures_last_hour"] == 0  # a give-back is no failure
    assert statistics["given_back_last_hour"] == 1  # but said, for a build neither built nor not
    assert statistics["failures_by_cause"] == {}

    def come_due() -> None:
        with psycopg.connect(superuser_dsn, autocommit=True) as conn:
            conn.execute("UPDATE builds SET retry_at = now() WHERE outcome = 'give-back'")
        assert len(db.requeue_given_back()) == 1
        assert ("foo", "1.0") in cp39(db)

    come_due()
    db.log_lost_build(1, "foo", "1.0", "cp39", timedelta(minutes=3), "silent for 0:01:00")
    second = db.conn.execute(
        "SELECT retry_at - built_at FROM builds WHERE cause = 'slave-lost'"
    ).fetchone()
    assert second is not None and timedelta(minutes=19) < second[0] < timedelta(minutes=21)
    come_due()
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("network")))
    outcomes = [row[1] for row in standing(db, "foo")]
    assert outcomes == ["give-back", "give-back", "failed"]  # the third try is the last
    assert ("foo", "1.0") not in cp39(db)
    summary = db.conn.execute("SELECT summary FROM builds ORDER BY build_id DESC").fetchone()
    assert summary is not None and summary[0].endswith("(tried 3 times)")
    assert db.get_statistics().failures_by_cause == {"cp39": {"network": 1}}


def test_an_operator_retries_every_failure_of_a_cause(farm: Database) -> None:
    db = farm
    db.set_build_abis(sorted_abis(["cp39", "cp311"]))
    db.set_project("foo", "foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_project("bar", "bar", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("tool")))
    db.log_build(1, "foo", "2.0", "cp39", failed(saved("tool")))
    db.log_build(1, "bar", "1.0", "cp39", failed(saved("python2")))
    assert db.retry_cause("missing-tool", "cp311") == []
    assert len(db.retry_cause("missing-tool", None)) == 2
    assert {("foo", "1.0"), ("foo", "2.0")} <= set(cp39(db))
    assert ("bar", "1.0") not in cp39(db)
    with pytest.raises(ValueError, match="no such cause"):
        db.retry_cause("bad-luck", None)


def test_a_build_the_database_refuses_is_recorded_failed_once(farm: Database) -> None:
    # as an original slave's reported it through a translating proxy: a dependency with an
    # empty tool name, which dependencies_tool_check refuses; the build was requeued and
    # rebuilt 154 times in 20 minutes
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    wheel = FileState(
        "foo-1.0-py3-none-any.whl",
        100,
        "0" * 64,
        "foo",
        "1.0",
        "py3",
        "none",
        "any",
        frozenset({Dependency("", "libc6")}),
        None,
    )
    result = BuildResult(True, timedelta(seconds=5), "built it", [wheel])
    build_id = db.log_build(1, "foo", "1.0", "cp39", result)
    assert standing(db, "foo") == [("cp39", "failed", "unknown", [], None, False)]
    assert db.get_file_hashes([wheel.filename]) == {}  # nothing listed
    assert ("foo", "1.0") not in cp39(db)  # counted against it like any failure: no loop
    summary, output = db.conn.execute(
        "SELECT b.summary, o.output FROM builds b JOIN output o USING (build_id) "
        "WHERE build_id = %s",
        (build_id,),
    ).fetchone() or ("", "")
    assert summary.startswith("the master refused its record")
    assert "dependencies_tool_check" in output
    assert output.startswith("built it")


def test_the_cause_of_every_saved_log() -> None:
    # the real logs of tests/slave/test_failure_logs.py, here without building anything
    expected = {
        "header": (Cause.MISSING_HEADER, (Want("header", "portaudio.h"),)),
        "library": (Cause.MISSING_LIBRARY, (Want("library", "portaudio"),)),
        "pkgconfig": (Cause.MISSING_LIBRARY, (Want("pkg-config", "portaudio-2.0"),)),
        "tool": (Cause.MISSING_TOOL, (Want("tool", "swig"),)),
        "requirement": (Cause.BUILD_REQUIREMENT, (Want("requirement", "piwtest-helper>=2"),)),
        "python2": (Cause.PYTHON_VERSION, ()),
        "import": (Cause.IMPORT_FAILED, (Want("module", "numpy"),)),
        "memory": (Cause.OUT_OF_MEMORY, ()),
        "disk": (Cause.DISK_FULL, ()),
        "network": (Cause.NETWORK, ()),
        "timeout": (Cause.TIMEOUT, ()),
        "unknown": (Cause.UNKNOWN, ()),
        # real projects' builds, from a farm following PyPI (cp311, Debian 12)
        "pypi-mysqlclient": (
            Cause.MISSING_LIBRARY,
            tuple(
                Want("pkg-config", name)
                for name in ("mysqlclient", "mariadb", "libmariadb", "perconaserverclient")
            ),
        ),
        "pypi-pycairo": (Cause.MISSING_LIBRARY, (Want("pkg-config", "cairo"),)),
        "pypi-bcrypt": (Cause.MISSING_TOOL, (Want("tool", "cargo"),)),
        # pyyaml 6.0 against Cython 3: no cause of the list, but the line that says why
        "pypi-pyyaml-cython3": (Cause.UNKNOWN, ()),
    }
    for case, (cause, wants) in expected.items():
        diagnosis = classify(saved(case), "piwtest-x", "1.0")
        assert (diagnosis.cause, diagnosis.wants) == (cause, wants), case
        assert "\n" not in diagnosis.summary
    pyyaml = classify(saved("pypi-pyyaml-cython3"), "pyyaml", "6.0")
    assert "'build_ext' object has no attribute 'cython_sources'" in pyyaml.summary


def test_a_batch_of_projects_meets_dep_waits_as_cloud_gazer_records_it(farm: Database) -> None:
    # Cloud Gazer records projects in batches (set_projects -> set_project_rows): bug found by
    # the end-to-end test, where only set_project met them
    db = farm
    db.set_project("piwtest-helper", "piwtest-helper", 1, "", "", [version("1.0")])
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", failed(saved("requirement")))
    helper = ProjectUpdate(
        "piwtest-helper", "piwtest-helper", 2, "", "", [version("1.0"), version("2.0")]
    )
    assert db.set_projects([helper]) == []
    assert ("foo", "1.0") in cp39(db)


def test_the_queue_says_how_far_the_builds_it_knows_go(farm: Database) -> None:
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0")])
    assert db.get_queue(10).last_build == 0
    build_id = db.log_build(1, "foo", "1.0", "cp39", failed(saved("network")))
    assert db.get_queue(10).last_build == build_id


def test_a_wheel_the_publish_gate_stopped_shows_why(farm: Database) -> None:
    # as the slave reports it (tests/slave/test_gate.py builds it for real): failed, no files
    db = farm
    db.set_project("piwtest-gate", "piwtest-gate", 1, "", "", [version("1.0")])
    log = (
        "[piwheels] wheel piwtest_gate-1.0-cp39-cp39-linux_x86_64.whl: 15000 bytes\n"
        "[piwheels] publish gate: import piwtest_gate failed: ImportError: libpiwgate.so: "
        "cannot open shared object file: No such file or directory\n"
        "[piwheels] publish gate: piwtest_gate-1.0-cp39-cp39-linux_x86_64.whl is not published\n"
        "[piwheels] publish gate: failed in 0.3s\n"
    )
    slave_says = classify(log, "piwtest-gate", "1.0")  # no Debian package provides it
    db.log_build(1, "piwtest-gate", "1.0", "cp39", failed(log, slave_says))
    assert standing(db, "piwtest-gate") == [("cp39", "failed", "import-failed", [], None, False)]
    project = db.get_project_data("piwtest-gate")
    assert project is not None
    cell = project.versions[0].cells["cp39"]
    assert (cell.state, cell.reason) == (BuildState.FAILED, "import-failed")
    assert (
        project.versions[0]
        .builds[0]
        .summary.startswith("the built wheel cannot load libpiwgate.so when imported")
    )
    page = project_page(project, apt_dependencies=[])
    assert "import-failed" in page
    assert "the built wheel cannot load libpiwgate.so when imported" in page


def test_a_build_past_the_builders_own_limit_is_failed_not_given_back(farm: Database) -> None:
    # builders like this one would stop it the same way: retrying it only costs their time
    db = farm
    db.set_project("foo", "foo", 1, "", "", [version("1.0"), version("2.0")])
    own = "[piwheels] pip was killed: it exceeded its memory limit of 3072 MB\n"
    db.log_build(1, "foo", "1.0", "cp39", failed(own))
    db.log_build(1, "foo", "2.0", "cp39", failed("MemoryError\n"))
    assert [row[1:3] for row in standing(db, "foo")] == [
        ("failed", "out-of-memory"),
        ("give-back", "out-of-memory"),
    ]
