"""What the watcher posts to the app, and which of it a newer message makes stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fake_master import statistics

from piwheels.monitor.messages import (
    BadMessage,
    BuildRecorded,
    MasterChanged,
    QueueChanged,
    SlavesChanged,
    StatsChanged,
)
from piwheels.records.status import BuildEvent, MasterStatus

STARTED = datetime(2026, 11, 22, tzinfo=UTC)
RUNNING = MasterStatus("running", STARTED, "0.1.0")


def test_snapshots_replace_older_snapshots_of_their_kind() -> None:
    assert QueueChanged({"cp39": 1}).can_replace(QueueChanged({"cp39": 2}))
    assert StatsChanged(statistics()).can_replace(StatsChanged(statistics(3)))
    assert SlavesChanged({}).can_replace(SlavesChanged({}))
    assert BadMessage("later").can_replace(BadMessage("earlier"))
    assert not QueueChanged({}).can_replace(StatsChanged(statistics()))
    assert not SlavesChanged({}).can_replace(QueueChanged({}))


def test_a_master_that_changed_state_or_restarted_is_never_skipped() -> None:
    later = MasterChanged(RUNNING, restarted=False)
    assert later.can_replace(MasterChanged(RUNNING, restarted=False))
    # a pause the log must report
    assert not later.can_replace(MasterChanged(RUNNING._replace(state="paused"), False))
    # a restart, after which the app asks for the whole state again
    assert not MasterChanged(RUNNING, restarted=True).can_replace(MasterChanged(RUNNING, False))


def test_events_for_the_log_are_never_merged() -> None:
    event = BuildEvent(STARTED, 3, "foo", "1.0", "cp311", True, timedelta(seconds=9))
    assert not BuildRecorded(event).can_replace(BuildRecorded(event))
