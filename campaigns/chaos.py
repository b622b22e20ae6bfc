"""A chaos campaign against a farm of its own (issue #21, "How it must be shown").

On loopback and in a temporary directory: the tests' LocalPyPI serving a catalogue written on
the spot (48 versions, 64 wheels on cp39 and cp311; see catalogue.py), ``piw-master`` on its own
embedded PostgreSQL (``--data-dir``), and three real ``piw-slave`` processes (one cp39, two
cp311). While they build, faults land (see faults.py): slaves killed mid-build and mid-transfer,
the master stopped, killed and frozen, its PostgreSQL killed. Everything killed is started again
on the same state. Then the queue drains, and the campaign checks that no build was lost or
duplicated, every page shows what is recorded, and nothing is left over.

    .venv/bin/python campaigns/chaos.py [--seconds S] [--faults N] [--seed N] [--keep]

It exits 1 if any figure that must be zero is not, 2 if the farm could not be set up. It
stops only the processes it started (by pid). See campaigns/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: campaigns/ is on sys.path, not its parent
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from campaigns.audit import audit_builds, audit_files, audit_pages, count, jsonable, read_log, table
from campaigns.catalogue import VERSIONS, projects, write_catalogue
from campaigns.farm import (
    BUILD_DEPS_DIR,
    MASTER_SAYS_CONNECTED,
    Farm,
    arguments,
    find_python,
    run_in_farm,
)
from campaigns.faults import Chaos, schedule
from piwheels.db.embedded.cluster import EmbeddedPostgres

ABIS = ("cp39", "cp311")
SLAVES = (("cp39-a", "3.9"), ("cp311-a", "3.11"), ("cp311-b", "3.11"))
PENDING_PAGES_SQL = "SELECT count(*) FROM pending_pages WHERE kind IN ('BOTH', 'PROJECT')"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
CONNECTED = re.compile(MASTER_SAYS_CONNECTED.pattern.decode())
WORKING = re.compile(r"slave (\d+): (?:build|resumed) ")
DROPPED = re.compile(r"slave \d+ \((\S+)\) dropped: (.*)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = arguments(
        "Run a bounded chaos campaign against a farm of its own, on loopback; print what was "
        "lost, duplicated, missing or left over."
    )
    parser.add_argument("--seconds", type=float, default=480, help="how long faults land")
    parser.add_argument("--faults", type=int, default=25, help="faults in that time")
    parser.add_argument("--seed", type=int, default=21, help="seed of the faults' schedule")
    parser.add_argument(
        "--drain-seconds", type=float, default=240, help="at most this long for the queue to drain"
    )
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    found = {version: find_python(version) for _, version in SLAVES}
    pythons = {version: path for version, path in found.items() if path is not None}
    if len(pythons) < len(found) or not any(BUILD_DEPS_DIR.glob("setuptools-*.whl")):
        say(f"needs CPython 3.9 and 3.11 under pyenv ({found}) and {BUILD_DEPS_DIR}")
        return 2
    return run_in_farm("piw-chaos-", options.keep, lambda farm: run(farm, pythons, options))


def run(farm: Farm, pythons: dict[str, Path], options: argparse.Namespace) -> int:
    say(f"setting up in {farm.work} ...")
    # the farm builds for about as long as faults land (see catalogue.py)
    entries = write_catalogue(farm.work / "projects", max(5, round(options.seconds / 10)))
    farm.start_index(entries, packages=farm.work / "projects")
    (farm.work / "tmp").mkdir()
    farm.env["TMPDIR"] = str(farm.work / "tmp")  # so that what slaves leave there is ours
    farm.pg = EmbeddedPostgres(farm.work / "data" / "postgres")  # the master's; we only read
    farm.dsn = farm.pg.dsn()
    farm.start_master(
        (name for name, _, _ in entries),
        ABIS,
        "--data-dir",
        str(farm.work / "data"),
        "--pypi-interval",
        "5",
        "--queue-interval",
        "1",
        "--busy-timeout",
        "15",
        "--slave-timeout",
        "60",
        # A build lost with its slave (killed mid-build) is given back after this delay (10
        # minutes by default, past the drain): soon enough to be built again within the run.
        "--give-back-delay",
        "5",
    )
    if not wait_for(lambda: queued(farm) >= len(entries), 180):
        say("the master did not queue the catalogue within 180 s; its log:")
        say("\n".join(farm.master_log.read_text(errors="replace").splitlines()[-30:]))
        return 2
    for label, version in SLAVES:
        farm.start_slave(label, pythons[version], busy_interval=2, master_timeout=10)
    chaos = Chaos(farm, farm.pg.data_dir, say)
    plan = schedule(options.seconds, options.faults, options.seed)
    say(f"{len(entries)} versions queued; {len(plan)} faults in {options.seconds:.0f} s ...")
    for fault in plan:
        chaos.wait(fault.at - chaos.now())
        chaos.deal(fault)
    chaos.wait(options.seconds - chaos.now())
    say("faults over; draining ...")
    drained = drain(farm, chaos, options.drain_seconds)
    return finish(farm, chaos, plan, drained, options)


def wait_for(check: Callable[[], bool], seconds: float, chaos: Chaos | None = None) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            if check():
                return True
        except psycopg.Error:
            pass  # the database is down for now
        if chaos is not None:
            chaos.wait(1)
        else:
            time.sleep(1)
    return False


def queued(farm: Farm) -> int:
    return int(farm.query("SELECT count(*) FROM build_queue")[0][0])


def drain(farm: Farm, chaos: Chaos, seconds: float) -> float | None:
    """Seconds until nothing is queued or being built and every page is written; None if
    that took longer than *seconds*."""
    started = time.monotonic()

    def idle() -> bool:
        building = any(any(s.root.glob("build-*")) for s in farm.slaves.values())
        return not building and queued(farm) == 0 and farm.query(PENDING_PAGES_SQL)[0][0] == 0

    return time.monotonic() - started if wait_for(idle, seconds, chaos) else None


def finish(
    farm: Farm, chaos: Chaos, plan: list[Any], drained: float | None, options: argparse.Namespace
) -> int:
    say("stopping the slaves and the master, and auditing ...")
    chaos.down.update(["master", *farm.slaves])
    slaves_died = farm.stop_slaves()
    builds_left = sorted(
        str(p.relative_to(farm.work)) for s in farm.slaves.values() for p in s.root.glob("build-*")
    )
    roots_left = sorted(p.name for p in (farm.work / "tmp").glob("piw-slave-*"))
    farm.note_children()
    assert farm.master is not None
    assert farm.pg is not None
    master_exit = farm.master.poll()
    stopped = farm.stop_processes()
    farm.pg.start()  # the master stopped its PostgreSQL; the audit reads it
    expected = {(p.name, v): (p.abis(ABIS), p.wheels()) for p in projects() for v in VERSIONS}
    builds = audit_builds(farm, expected)
    files = audit_files(farm)
    pages = audit_pages(farm)
    leftovers = {
        ".part files under simple/": [f for f in files["temp_files_left"] if f.endswith(".part")],
        "other dotfiles under simple/": [
            f for f in files["temp_files_left"] if not f.endswith(".part")
        ],
        "wheels on disk not in the database": files["served_unlisted"],
        "files in the database missing on disk": files["listed_missing"],
        "slaves' build directories": builds_left,
        "piw-slave-* in our TMPDIR": roots_left,
    }
    zero = {
        "builds lost": builds["lost"],
        "builds duplicated": builds["duplicated"],
        "files recorded twice": builds["files_twice"],
        "pages missing": pages,
        **{f"left over: {k}": v for k, v in leftovers.items()},
        "hash mismatches, disk vs database": files["listed_other_bytes"],
        "deaths no fault caused": chaos.unexpected,
    }
    figures = {
        "seed": options.seed,
        "faults": [(round(f.dealt, 1), f.kind, f.note) for f in plan],
        "zero": zero,
        "files_listed": files["files_listed"],
        "drained_after_s": None if drained is None else round(drained, 1),
        "master_restarts": len(chaos.restarts),
        "master_exits_on_sigterm": [*chaos.exits_on_term, stopped.get("master_exit_on_stop")],
        "master_exited_before_the_end": master_exit,
        "postgres_back_after_s": [None if b is None else round(b, 1) for b in chaos.postgres_back],
        "back_to_work": back_to_work(farm.master_log, chaos.restarts),
        "dropped": dropped(farm.master_log),
        "orphans": chaos.orphans,
        "slaves_died_by_themselves": slaves_died,
        "processes_left_behind": stopped["leftovers_killed"],
        "log": read_log(farm.master_log),
    }
    say(report(figures))
    if options.json is not None:
        options.json.write_text(json.dumps(jsonable(figures), indent=1, default=str))
    return 1 if any(zero.values()) else 0


def back_to_work(log: Path, restarts: list[datetime]) -> list[dict[str, float | None]]:
    """For each master restart, from its log: seconds until each slave connected, and until
    the first slave was handed a build or resumed one."""
    events: list[tuple[datetime, str, str]] = []  # (when, slave id, label or "work")
    for line in log.read_text(errors="replace").splitlines():
        stamp = LOG_TIME.match(line)
        if stamp is None:
            continue
        when = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f")
        if (found := CONNECTED.search(line)) is not None:
            events.append((when, found[1], found[2]))
        elif WORKING.search(line) is not None:
            events.append((when, "", "work"))
    figures = []
    for number, restart in enumerate(restarts):
        end = restarts[number + 1] if number + 1 < len(restarts) else datetime.max
        after: dict[str, float | None] = {label: None for label, _ in SLAVES}
        after["work"] = None
        for when, _, label in events:
            if restart <= when < end and label in after and after[label] is None:
                after[label] = round((when - restart).total_seconds(), 1)
        figures.append(after)
    return figures


def dropped(log: Path) -> dict[str, int]:
    """Why the master dropped slaves (a slave killed mid-transfer is not building: only the
    --slave-timeout drops it, and gives its build back)."""
    reasons: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if (found := DROPPED.search(line)) is not None:
            reasons[found[2]] += 1
    return dict(reasons)


def report(figures: dict[str, Any]) -> str:
    log = figures["log"]
    drained = figures["drained_after_s"]
    drained = "NOT DRAINED" if drained is None else drained
    out = [
        "",
        f"chaos campaign, seed {figures['seed']}: {len(figures['faults'])} faults",
        *(f"  +{at:6.1f} s  {kind:<20} {note}" for at, kind, note in figures["faults"]),
        "",
        "must be zero",
        table([(k, count(v)) for k, v in figures["zero"].items()]),
        "",
        "the farm",
        table(
            [
                ("files recorded", figures["files_listed"]),
                ("queue drained after (s)", drained),
                ("master restarts", figures["master_restarts"]),
                ("master exit status on SIGTERM", figures["master_exits_on_sigterm"]),
                ("PostgreSQL back after (s)", figures["postgres_back_after_s"]),
                ("orphans of killed processes", count(figures["orphans"])),
                ("slaves dead at the end", figures["slaves_died_by_themselves"] or "none"),
                ("processes left behind, killed", figures["processes_left_behind"] or "none"),
                ("slaves dropped by the master", figures["dropped"] or "none"),
            ]
        ),
        "",
        "after each master restart: seconds until each slave connected, and until work",
        *(f"  {n + 1:2}. {after}" for n, after in enumerate(figures["back_to_work"])),
        "",
        f"master log: {log['levels']}",
        table([(k, n) for k, n in log["errors_by_kind"].most_common(30)]),
        f"crashed: {len(log['crashes'])}",
    ]
    for crash in log["crashes"]:
        out += ["  " + crash[0][:200], *("      " + line[:200] for line in crash[1:][-8:])]
    for line in figures["zero"]["deaths no fault caused"]:
        out.append(f"  died without a fault: {line[:400]}")
    verdict = "FAIL" if any(figures["zero"].values()) else "pass"
    return "\n".join([*out, "", f"verdict: {verdict}"])


if __name__ == "__main__":
    sys.exit(main())
