"""The build queue's rules, against a real PostgreSQL (seed 000 and issue #2, item 6)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from piwheels.abis import sorted_abis
from piwheels.db import migrate as migrate_module
from piwheels.db import web_queries
from piwheels.db.builds import file_rows
from piwheels.db.database import Database
from piwheels.db.project_rows import ProjectVersion, version_orders
from piwheels.records.builds import BuildResult, FileState
from piwheels.records.projects import QueuePlace

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def version(ver: str, *, days_ago: int | None = 0, **kwargs: object) -> ProjectVersion:
    """*days_ago* None: a version PyPI has no file of, so no upload time."""
    fields: dict[str, object] = {
        "version": ver,
        "released": None if days_ago is None else NOW - timedelta(days=days_ago),
        "requires_python": None,
        "has_sdist": True,
        "yanked": False,
        "skip": "",
    }
    fields.update(kwargs)
    return ProjectVersion(**fields)  # type: ignore[arg-type]


def wheel(name: str) -> FileState:
    pkg, ver, py, abi, plat = name.removesuffix(".whl").split("-")
    return FileState(name, 100, "0" * 64, pkg, ver, py, abi, plat, frozenset(), None)


def built(*names: str) -> BuildResult:
    return BuildResult(True, timedelta(seconds=5), "ok", [wheel(n) for n in names])


FAILED = BuildResult(False, timedelta(seconds=5), "error: it broke", [])


def queue_of(db: Database) -> dict[str, list[tuple[str, str]]]:
    return {abi: entries for abi, entries in db.get_queue(100).heads.items() if entries}


def test_abis_are_ordered_by_python_version_not_text(db: Database) -> None:
    assert [abi.abi_tag for abi in db.get_build_abis()] == ["cp39", "cp310", "cp311", "cp313"]


def test_new_version_is_queued_at_once_on_the_lowest_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_none_wheel_covers_every_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-py3-none-any.whl"))
    assert queue_of(db) == {}


def test_abi_specific_wheel_moves_on_to_the_next_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    assert queue_of(db) == {"cp310": [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp310", built("foo-1.0-cp310-cp310-linux_x86_64.whl"))
    assert queue_of(db) == {"cp311": [("foo", "1.0")]}


def test_abi3_wheel_covers_its_abi_and_above(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl"))
    db.log_build(1, "foo", "1.0", "cp310", built("foo-1.0-cp310-abi3-linux_x86_64.whl"))
    assert queue_of(db) == {}


def test_abi3_wheel_above_the_abi_built_on_does_not_cover_it(db: Database) -> None:
    # a cp311-abi3 wheel built on cp39 cannot serve 3.9 or 3.10: they still need their builds
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.log_build(1, "foo", "1.0", "cp39", built("foo-1.0-cp311-abi3-linux_x86_64.whl"))
    assert queue_of(db) == {"cp310": [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp310", FAILED)
    assert queue_of(db) == {}


def test_failure_moves_on_and_is_not_retried_on_the_same_abi(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    for abi, following in (("cp39", "cp310"), ("cp310", "cp311"), ("cp311", "cp313")):
        db.log_build(1, "foo", "1.0", abi, FAILED)
        assert queue_of(db) == {following: [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp313", FAILED)
    assert queue_of(db) == {}
    db.set_project("foo", "Foo", 2, "", "", [version("1.0")])  # a PyPI update changes nothing
    assert queue_of(db) == {}


def test_requires_python_skips_abis_with_a_reason(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", requires_python=">=3.11")])
    assert queue_of(db) == {"cp311": [("foo", "1.0")]}
    reasons = db.conn.execute(
        "SELECT abi_tag, reason FROM version_abi_skips ORDER BY abi_tag"
    ).fetchall()
    assert reasons == [
        ("cp310", "Requires-Python '>=3.11' excludes Python 3.10"),
        ("cp39", "Requires-Python '>=3.11' excludes Python 3.9"),
    ]


def test_requires_python_excluding_every_abi_queues_nothing(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", requires_python="<3")])
    assert queue_of(db) == {}


@pytest.mark.parametrize(
    "change",
    [{"yanked": True}, {"has_sdist": False}, {"skip": "not a valid PEP 440 version"}],
    ids=["yanked", "binary-only", "skipped"],
)
def test_unbuildable_versions_are_never_queued(db: Database, change: dict[str, object]) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", **change)])
    assert queue_of(db) == {}


def test_yanking_a_queued_version_takes_it_off_the_queue(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0")])
    db.set_project("foo", "Foo", 2, "", "", [version("1.0", yanked=True)])
    assert queue_of(db) == {}


def test_removed_versions_and_projects_leave_the_queue(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0"), version("2.0")])
    db.set_project("foo", "Foo", 2, "", "", [version("2.0")])
    assert queue_of(db) == {"cp39": [("foo", "2.0")]}
    removed = db.conn.execute("SELECT removed FROM versions WHERE version = '1.0'").fetchone()
    assert removed == (True,)
    db.remove_project("foo")
    assert queue_of(db) == {}
    assert db.get_package_serials() == {"foo": -1}


def test_binary_only_version_is_queued_when_an_sdist_appears(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", has_sdist=False)])
    assert queue_of(db) == {}
    db.set_project("foo", "Foo", 2, "", "", [version("1.0")])
    assert queue_of(db) == {"cp39": [("foo", "1.0")]}


def test_newest_release_first_within_an_abi(db: Database) -> None:
    db.set_project("old", "old", 1, "", "", [version("1.0", days_ago=400)])
    db.set_project("new", "new", 1, "", "", [version("1.0", days_ago=0)])
    db.set_project("mid", "mid", 1, "", "", [version("1.0", days_ago=30)])
    assert queue_of(db) == {"cp39": [("new", "1.0"), ("mid", "1.0"), ("old", "1.0")]}
    assert db.get_queue(100).lengths == {"cp39": 3, "cp310": 0, "cp311": 0, "cp313": 0}


def test_adding_an_abi_requeues_with_its_skips(db: Database) -> None:
    db.set_project("foo", "Foo", 1, "", "", [version("1.0", requires_python=">=3.12")])
    assert queue_of(db) == {"cp313": [("foo", "1.0")]}
    db.log_build(1, "foo", "1.0", "cp313", built("foo-1.0-cp313-cp313-linux_x86_64.whl"))
    assert db.set_build_abis(sorted_abis(["cp39", "cp310", "cp311", "cp312", "cp313"]))
    assert queue_of(db) == {"cp312": [("foo", "1.0")]}
    assert not db.set_build_abis(sorted_abis(["cp39", "cp310", "cp311", "cp312", "cp313"]))


# -- the order within an ABI's queue (issue #14) ----------------------------------------------


def cp39(db: Database) -> list[tuple[str, str]]:
    """The cp39 queue in build order."""
    return db.get_queue(1000).heads["cp39"]


def record_campaign(db: Database) -> None:
    """A busy project (a long history, a pre-release, a backport uploaded after a newer
    release), a steady one, one with only pre-releases, and a quiet one: one old release."""
    db.set_project(
        "busy",
        "busy",
        1,
        "",
        "",
        [
            version("1.0", days_ago=300),
            version("1.1", days_ago=200),
            version("1.2", days_ago=100),
            version("2.0rc1", days_ago=3),
            version("1.1.1", days_ago=1),  # a backport: not the newest release
        ],
    )
    db.set_project(
        "steady",
        "steady",
        1,
        "",
        "",
        [version("0.1", days_ago=50), version("0.2", days_ago=40), version("0.3", days_ago=30)],
    )
    db.set_project(
        "early", "early", 1, "", "", [version("0.1a1", days_ago=20), version("0.1b1", days_ago=10)]
    )
    db.set_project("quiet", "quiet", 1, "", "", [version("1.0", days_ago=2000)])


# The documented order: each project's newest release (its newest final release; its newest
# pre-release if it has no final one), newest upload first; then the rest by their rank in their
# own project, final releases before pre-releases, each rank by newest upload.
CAMPAIGN_ORDER = [
    ("early", "0.1b1"),  # tier 1: each project's newest release, newest upload first
    ("steady", "0.3"),
    ("busy", "1.2"),
    ("quiet", "1.0"),
    ("busy", "1.1.1"),  # rank 2
    ("early", "0.1a1"),
    ("steady", "0.2"),
    ("steady", "0.1"),  # rank 3
    ("busy", "1.1"),
    ("busy", "1.0"),  # rank 4
    ("busy", "2.0rc1"),  # rank 5: a project's pre-releases after its final releases
]


def test_each_projects_newest_release_first_then_the_backlog_by_rank(db: Database) -> None:
    record_campaign(db)
    assert cp39(db) == CAMPAIGN_ORDER
    places = db.conn.execute(
        "SELECT v.package, v.version, q.tier, q.rank FROM build_queue q"
        " JOIN versions v USING (version_id) WHERE v.package = 'busy' ORDER BY q.rank"
    ).fetchall()
    assert places == [
        ("busy", "1.2", 1, 1),
        ("busy", "1.1.1", 2, 2),
        ("busy", "1.1", 2, 3),
        ("busy", "1.0", 2, 4),
        ("busy", "2.0rc1", 2, 5),
    ]


def test_a_new_release_of_a_quiet_project_jumps_ahead_of_every_backlog(db: Database) -> None:
    record_campaign(db)
    db.set_project("quiet", "quiet", 2, "", "", [version("1.0", days_ago=2000), version("1.1")])
    order = cp39(db)
    assert order[0] == ("quiet", "1.1")
    assert order.index(("quiet", "1.0")) > order.index(("busy", "1.2"))  # now quiet's backlog
    # a release newer by version but uploaded earlier is still the newest release
    db.set_project(
        "steady",
        "steady",
        2,
        "",
        "",
        [
            version("0.1", days_ago=50),
            version("0.2", days_ago=40),
            version("0.3", days_ago=30),
            version("1.0", days_ago=60),
        ],
    )
    order = cp39(db)
    assert order.index(("steady", "1.0")) < order.index(("busy", "1.2"))
    assert order.index(("steady", "0.3")) > order.index(("busy", "1.2"))  # now in the backlog


def test_the_newest_release_gone_or_unbuildable_gives_its_place_to_the_next(
    db: Database,
) -> None:
    record_campaign(db)
    db.set_yanked("busy", "1.2", True)
    assert cp39(db)[:4] == [
        ("busy", "1.1.1"),  # the newest upload, now the newest release too
        ("early", "0.1b1"),
        ("steady", "0.3"),
        ("quiet", "1.0"),
    ]
    db.set_yanked("busy", "1.2", False)
    assert cp39(db) == CAMPAIGN_ORDER
    db.set_skip("steady", "0.3", "breaks the builders")
    assert ("steady", "0.2") in cp39(db)[:4]
    db.set_skip("steady", "0.3", "")
    assert cp39(db) == CAMPAIGN_ORDER
    # PyPI no longer lists it, or it has only wheels: the same
    db.set_project(
        "busy",
        "busy",
        2,
        "",
        "",
        [
            version("1.0", days_ago=300),
            version("1.1", days_ago=200),
            version("1.2", days_ago=100, has_sdist=False),
            version("2.0rc1", days_ago=3),
        ],
    )
    assert cp39(db)[:4] == [
        ("early", "0.1b1"),
        ("steady", "0.3"),
        ("busy", "1.1"),
        ("quiet", "1.0"),
    ]
    # built on every ABI, it keeps its place: the next version does not become the newest
    db.set_project(
        "busy",
        "busy",
        3,
        "",
        "",
        [
            version("1.0", days_ago=300),
            version("1.1", days_ago=200),
            version("1.2", days_ago=100),
            version("2.0rc1", days_ago=3),
        ],
    )
    db.log_build(1, "busy", "1.2", "cp39", built("busy-1.2-py3-none-any.whl"))
    assert cp39(db)[:3] == [("early", "0.1b1"), ("steady", "0.3"), ("quiet", "1.0")]
    assert cp39(db)[3:6] == [("early", "0.1a1"), ("steady", "0.2"), ("busy", "1.1")]


def test_a_project_of_pre_releases_only_counts_its_newest_until_a_final_release(
    db: Database,
) -> None:
    record_campaign(db)
    db.set_project(
        "early",
        "early",
        2,
        "",
        "",
        [version("0.1a1", days_ago=20), version("0.1b1", days_ago=10), version("0.1", days_ago=5)],
    )
    order = cp39(db)
    assert order[0] == ("early", "0.1")
    assert order.index(("early", "0.1b1")) > order.index(("quiet", "1.0"))


def test_an_operator_moves_a_version_or_a_project_to_the_front_and_back(db: Database) -> None:
    record_campaign(db)
    db.set_priority("busy", "1.0", True)
    assert cp39(db) == [("busy", "1.0")] + [e for e in CAMPAIGN_ORDER if e != ("busy", "1.0")]
    # a project: its every queued version, its newest first, after or among other priorities
    db.set_priority("steady", None, True)
    assert cp39(db)[:4] == [
        ("steady", "0.3"),
        ("steady", "0.2"),
        ("steady", "0.1"),
        ("busy", "1.0"),
    ]
    # its new releases go first too, for as long as the priority stays
    db.set_project(
        "steady",
        "steady",
        2,
        "",
        "",
        [
            version("0.1", days_ago=50),
            version("0.2", days_ago=40),
            version("0.3", days_ago=30),
            version("0.4"),
        ],
    )
    assert cp39(db)[0] == ("steady", "0.4")
    db.set_priority("steady", None, False)
    db.set_priority("busy", "1.0", False)
    assert cp39(db)[0] == ("steady", "0.4")  # the newest upload of tier 1
    assert cp39(db).index(("busy", "1.0")) == len(cp39(db)) - 2
    # a priority follows the version to the next ABI
    db.set_priority("busy", "1.0", True)
    db.log_build(1, "busy", "1.0", "cp39", built("busy-1.0-cp39-cp39-linux_x86_64.whl"))
    assert db.get_queue(10).heads["cp310"] == [("busy", "1.0")]
    assert ("busy", "1.0") not in cp39(db)
    with pytest.raises(psycopg.errors.NoDataFound, match=r"no such version: busy 9\.9"):
        db.set_priority("busy", "9.9", True)
    with pytest.raises(psycopg.errors.NoDataFound, match="no such package: nope"):
        db.set_priority("nope", None, True)


def test_a_version_added_by_hand_takes_its_place_by_version(db: Database) -> None:
    record_campaign(db)
    db.add_by_hand("busy", "1.1.5", "")  # no upload time, and older than 1.2
    order = cp39(db)
    assert order.index(("busy", "1.1.5")) > order.index(("quiet", "1.0"))
    assert order.index(("busy", "1.1.5")) < order.index(("busy", "1.1.1"))
    db.add_by_hand("busy", "3.0", "")
    # busy's newest release now, so in tier 1; with no upload time, after the others there
    order = cp39(db)
    assert order[:4] == [("early", "0.1b1"), ("steady", "0.3"), ("quiet", "1.0"), ("busy", "3.0")]
    assert order.index(("busy", "3.0")) < order.index(("busy", "1.2"))
    released = db.conn.execute(
        "SELECT released FROM versions WHERE package = 'busy' AND version = '3.0'"
    ).fetchone()
    assert released == (None,)


def test_a_version_with_no_upload_time_is_never_the_newest(db: Database) -> None:
    # pyyaml's 3.01-3.09 have no files on PyPI, so no upload time: they were recorded as
    # released when first seen, and shown (and queued) as the newest
    db.set_project(
        "yamlish",
        "yamlish",
        1,
        "",
        "",
        [
            version("3.09", days_ago=None, has_sdist=False),
            version("3.10", days_ago=3000),
            version("6.0", days_ago=30),
            version("3.01", days_ago=None, has_sdist=False),
        ],
    )
    db.set_project("other", "other", 2, "", "", [version("1.0", days_ago=2000)])
    assert cp39(db)[:2] == [("yamlish", "6.0"), ("other", "1.0")]
    rows = db.conn.execute(
        "SELECT version, released FROM versions WHERE package = 'yamlish' ORDER BY version_order"
    ).fetchall()
    assert [(v, r is None) for v, r in rows] == [
        ("3.01", True),
        ("3.09", True),
        ("3.10", False),
        ("6.0", False),
    ]
    page = db.get_project_data("yamlish")
    assert page is not None
    assert [v.version for v in page.versions] == ["6.0", "3.10", "3.09", "3.01"]
    assert [v.released is None for v in page.versions] == [False, False, True, True]


def _whole_queue(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT * FROM build_queue ORDER BY version_id").fetchall()


def test_requeue_all_and_queue_version_agree_on_every_place(
    db: Database, superuser_dsn: str
) -> None:
    record_campaign(db)
    db.set_priority("steady", None, True)
    db.set_priority("busy", "1.0", True)
    db.log_build(1, "busy", "1.2", "cp39", built("busy-1.2-cp39-cp39-linux_x86_64.whl"))
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        conn.execute("UPDATE packages SET popularity = 7 WHERE package = 'quiet'")
        conn.execute("SELECT reorder_queue(ARRAY['quiet'])")
        before = _whole_queue(conn)
        assert len(before) == len(CAMPAIGN_ORDER)
        conn.execute("SELECT requeue_all()")
        assert _whole_queue(conn) == before
        conn.execute("DELETE FROM build_queue")
        conn.execute("SELECT requeue_all()")
        assert _whole_queue(conn) == before
        conn.execute("SELECT queue_version(version_id) FROM versions")
        assert _whole_queue(conn) == before
        # places out of date (as after a crash of logic, or by hand): requeue_all mends them
        conn.execute("UPDATE build_queue SET tier = 2, rank = 99, popularity = 0")
        conn.execute("SELECT requeue_all()")
        assert _whole_queue(conn) == before


def _places(db: Database) -> dict[tuple[str, str], QueuePlace]:
    """Every queued version's place, as the project pages read them."""
    places = {}
    for package in ("busy", "steady", "early", "quiet"):
        for (vid, _), place in web_queries.queue_places(db.conn, package).items():
            row = db.conn.execute(
                "SELECT version FROM versions WHERE version_id = %s", (vid,)
            ).fetchone()
            assert row is not None
            places[package, row[0]] = place
    return places


def test_each_queued_version_knows_how_many_wait_before_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_campaign(db)
    db.set_priority("busy", "1.0", True)
    order = cp39(db)
    assert order[0] == ("busy", "1.0")
    places = _places(db)
    assert set(places) == set(order)
    for ahead, entry in enumerate(order):
        place = places[entry]
        assert (place.ahead, place.ahead_at_most) == (ahead, ahead), entry
    assert (places["busy", "1.0"].tier, places["busy", "1.0"].rank) == (0, 4)
    assert (places["quiet", "1.0"].tier, places["quiet", "1.0"].rank) == (1, 1)
    assert (places["busy", "1.1"].tier, places["busy", "1.1"].rank) == (2, 3)
    # the queue's kept lengths, folded or still in the journal, say the same
    db.get_queue(1)  # folds the journal
    db.log_build(1, "steady", "0.3", "cp39", built("steady-0.3-cp39-cp39-linux_x86_64.whl"))
    order = cp39(db)
    places = _places(db)
    for ahead, entry in enumerate(order):
        assert places[entry].ahead == ahead, entry
    # counted one by one only so far into a (tier, rank): beyond, a range
    monkeypatch.setattr(web_queries, "PLACE_COUNT_CAP", 1)
    places = _places(db)
    tier1 = [entry for entry in order if places[entry].tier == 1]
    assert len(tier1) == 3
    assert (places[tier1[0]].ahead, places[tier1[0]].ahead_at_most) == (1, 1)
    for entry in tier1[1:]:
        assert (places[entry].ahead, places[entry].ahead_at_most) == (2, 3), entry
    # the home page's figures: put first, newest releases, backlog
    figures = db.get_statistics()._asdict()
    assert figures["queue"]["cp39"] == len(order)
    assert figures["queue_priority"]["cp39"] == 1
    assert figures["queue_newest"]["cp39"] == 3
    assert figures["queue"]["cp310"] == 1  # steady 0.3, built on cp39, waits on cp310
    assert figures["queue_newest"]["cp310"] == 1


def test_popularity_breaks_ties_of_tier_and_rank(db: Database, superuser_dsn: str) -> None:
    record_campaign(db)
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        # set as the later issue's download counts will (today every project has 0)
        conn.execute("UPDATE packages SET popularity = 1000 WHERE package = 'quiet'")
        conn.execute("SELECT reorder_queue(ARRAY['quiet'])")
    assert cp39(db)[0] == ("quiet", "1.0")
    assert cp39(db)[1:4] == CAMPAIGN_ORDER[:3]


def test_the_queue_is_read_by_one_index_scan_in_its_order(db: Database) -> None:
    record_campaign(db)
    plan = "\n".join(
        row[0]
        for row in db.conn.execute(
            "EXPLAIN SELECT v.package, v.version FROM build_queue q"
            " JOIN versions v USING (version_id) WHERE q.abi_tag = 'cp39'"
            " ORDER BY q.tier, q.rank, q.popularity DESC, q.released DESC LIMIT 1000"
        )
    )
    assert "build_queue_order" in plan
    assert "Sort" not in plan


# Spellings packaging accepts, in its order (the upgrade to migration 0010 works the order out
# in SQL for the versions already on record, and must agree).
PEP440_ORDER = [
    "0.9",
    "1.0.dev0",
    "1.0a1.dev1",
    "1.0a1",
    "1.0ALPHA3",
    "1.0b1",
    "1.0-beta.2",
    "1.0rc1",
    "1.0c2",
    "1.0-preview.4",
    "1.0",
    "1.0.post0.dev1",
    "1.0.post",
    "1.0-1",
    "1.0.r5",
    "1.0.1",
    "1.1.dev1",
    "1.1",
    "1.2",
    "1.10",
    "3.0.0.1",
    "v3.1",
    "2024.1.15",
    "20240115",
    "1!0.1",
]


def set_projects_alone(db: Database, batch: str) -> None:
    """Database._record_batch before migration 0020 (and the yank reasons of 0014)."""
    db.conn.execute("SELECT set_projects(%s::jsonb)", (batch,))


def log_build_before_0012(
    db: Database, slave_id: int, package: str, ver: str, abi_tag: str, result: BuildResult
) -> None:
    """Record a build as log_build() did before migration 0012 (no failure record), for the
    tests of older upgrades."""
    db.conn.execute(
        "SELECT log_build(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            slave_id,
            package,
            ver,
            abi_tag,
            result.status,
            result.duration,
            result.output,
            None,
            Jsonb(file_rows(result)),
        ),
    )


def test_the_upgrade_orders_recorded_versions_as_packaging_does(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_migration = migrate_module.migrations()
    monkeypatch.setattr(
        migrate_module, "migrations", lambda: [m for m in every_migration if m.name < "0010"]
    )
    # before migration 0012 no build waits for a release, before 0014 nothing has a yank
    # reason, before 0020 set_projects is called alone
    monkeypatch.setattr(Database, "requeue_met_dep_waits", lambda self, projects: [])
    monkeypatch.setattr(Database, "_record_batch", set_projects_alone)
    migrate_module.migrate(fresh_database)
    db = Database(make_conninfo(fresh_database, user="piwheels"))
    try:
        db.set_build_abis(sorted_abis(["cp39", "cp311"]))
        shuffled = sorted(PEP440_ORDER, key=lambda v: hashlib.sha256(v.encode()).digest())
        foo = [version(v, days_ago=10 + n) for n, v in enumerate(shuffled)]
        foo.append(version("not a version", skip="not a valid PEP 440 version"))
        db.set_project("foo", "foo", 1, "", "", foo)
        db.set_project("bar", "bar", 1, "", "", [version("1.0", days_ago=1), version("2.0b1")])
        log_build_before_0012(
            db, 1, "foo", "1.0", "cp39", built("foo-1.0-cp39-cp39-linux_x86_64.whl")
        )
        monkeypatch.setattr(migrate_module, "migrations", lambda: every_migration)
        migrate_module.migrate(fresh_database)
        db.close()
        recorded = db.conn.execute(
            "SELECT version, version_order, prerelease FROM versions WHERE package = 'foo'"
        ).fetchall()
        expected = version_orders([*PEP440_ORDER, "not a version"])
        assert {v: (order, pre) for v, order, pre in recorded} == expected
        assert sorted(PEP440_ORDER, key=lambda v: expected[v][0] or 0) == PEP440_ORDER
        # ranks and places as the new rules give them
        before = _whole_queue(db.conn)
        assert cp39(db)[:2] == [("bar", "1.0"), ("foo", "1!0.1")]
        assert db.get_queue(100).heads["cp311"] == [("foo", "1.0")]
        db.conn.execute("SELECT requeue_all()")
        assert _whole_queue(db.conn) == before
        # Cloud Gazer's next look at the project finds nothing to change
        rows_before = db.conn.execute("SELECT version_id, xmin::text FROM versions").fetchall()
        db.set_project("foo", "foo", 2, "", "", foo)
        assert db.conn.execute("SELECT version_id, xmin::text FROM versions").fetchall() == (
            rows_before
        )
        assert _whole_queue(db.conn) == before
    finally:
        db.close()
