"""ChildJob: work in a child process, never waited for, never run twice at once."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest

from farm import wait_for
from piwheels.master_support.children import ChildJob

log = logging.getLogger("piwheels.test_children")


def counting_job(
    tmp_path: Path, seconds: float, *, min_gap: float = 0.0, duty: float = 1.0
) -> ChildJob:
    """A job that sleeps, then appends a line to runs.txt and says so."""
    script = (
        "import sys, time; time.sleep(float(sys.argv[1]));"
        "open(sys.argv[2], 'a').write('run\\n'); print('counted')"
    )
    command = [sys.executable, "-c", script, str(seconds), str(tmp_path / "runs.txt")]
    return ChildJob("the counter", command, dict(os.environ), log, min_gap=min_gap, duty=duty)


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def settle(job: ChildJob, timeout: float = 30.0) -> None:
    def idle() -> bool:
        job.check()
        return not job.running and not job.wanted

    wait_for(idle, timeout=timeout, what="the job to finish")


def test_requests_while_running_make_one_more_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    job = counting_job(tmp_path, 0.5)
    job.request()
    assert job.running
    for _ in range(5):  # a burst while the first run is going
        job.request()
    settle(job)
    assert runs(tmp_path) == 2
    assert job.runs == 2
    assert caplog.text.count("the counter: counted") == 2


def test_runs_are_spaced_by_the_minimum_gap(tmp_path: Path) -> None:
    job = counting_job(tmp_path, 0.0, min_gap=1.5)
    job.request()
    wait_for(lambda: (job.check(), not job.running)[1], what="the first run")
    started = time.monotonic()
    job.request()
    assert not job.running  # too soon: it waits for the gap, without blocking the caller
    assert time.monotonic() - started < 0.5
    settle(job)
    assert runs(tmp_path) == 2
    assert time.monotonic() - started >= 1.0


def test_a_failure_is_logged_with_what_the_child_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    command = [sys.executable, "-c", "import sys; sys.exit('the disk is full')"]
    job = ChildJob("the failing job", command, dict(os.environ), log)
    job.request()
    settle(job)
    assert "the failing job failed (status 1" in caplog.text
    assert "the disk is full" in caplog.text


def test_stop_ends_a_long_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=log.name)
    job = counting_job(tmp_path, 60)
    job.request()
    pid = job.process.pid if job.process else None
    assert pid is not None
    started = time.monotonic()
    job.stop()
    assert time.monotonic() - started < 10
    assert not job.running
    assert runs(tmp_path) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
    assert "the counter: stopped after" in caplog.text
    assert "failed" not in caplog.text  # stopping is not a failure


def test_a_command_that_cannot_start_is_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = ChildJob("the missing job", [str(tmp_path / "no-such-program")], {}, log, min_gap=60)
    job.request()
    assert "cannot start the missing job" in caplog.text
    assert not job.running and job.wanted  # to be tried again once the gap has passed


def test_a_long_job_runs_at_most_its_duty_of_the_time(tmp_path: Path) -> None:
    job = counting_job(tmp_path, 0.5, min_gap=0.0, duty=0.25)
    job.request()
    first = time.monotonic()
    wait_for(lambda: (job.check(), not job.running)[1], what="the first run")
    assert job.took >= 0.5
    job.request()
    assert not job.running  # its last run took 0.5 s: the next waits for 2 s from its start
    settle(job)
    assert runs(tmp_path) == 2
    assert time.monotonic() - first >= 4 * 0.5


def test_an_unspaced_request_does_not_wait_out_the_gap(tmp_path: Path) -> None:
    """An operator's piw-rebuild: the sitemap's hour between runs is not theirs to wait."""
    job = counting_job(tmp_path, 0, min_gap=3600)
    job.request()
    settle(job)
    job.request()
    assert job.wanted and not job.running  # due in an hour
    job.request(unspaced=True)
    settle(job)
    assert runs(tmp_path) == 2
