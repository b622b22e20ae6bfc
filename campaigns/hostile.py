"""A hostile campaign against a running piw-master (issue #13, "How it must be shown").

It starts a farm of its own, on loopback and in a temporary directory: a PostgreSQL (the tests'
EmbeddedPostgres, on pgserver's binaries), the tests' LocalPyPI serving their package catalogue,
``piw-master`` as a subprocess, and one real ``piw-slave`` building that catalogue with pyenv's
CPython 3.11. While the real slave builds, it throws at every queue the master opens to the
outside (slave, file, import and control queues; subscriptions on the status queue): random
bytes, bad CBOR, wrong shapes, every message with each field mutated, out-of-order sequences,
identity games, rogue slaves and importers, floods and big integers. The builder queues get it
all twice: on the secure (CurveZMQ) queues from a hostile builder whose key the master trusts,
and on the insecure queues, which anyone may use. Strangers (no CurveZMQ, keys no one trusted,
the wrong master key, handshakes by hand, a flood of handshakes, a key revoked) knock on the
secure queues and must get nothing. Then it checks what the master left behind and prints a
table of figures.

    .venv/bin/python campaigns/hostile.py [--seconds S] [--messages N] [--seed N]

It exits 1 if the master died during the campaign, a file is served that the database does
not list, or a stranger was admitted or answered; 2 if the farm could not be set up. It stops
only the processes it started (by pid) and removes its temporary directory (unless --keep). See
campaigns/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: campaigns/ is on sys.path, not its parent
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg.conninfo import make_conninfo

from campaigns import rogues, scenarios, strangers
from campaigns.audit import (
    BUILDS_SQL,
    QUEUE_SQL,
    Meter,
    audit_files,
    count,
    jsonable,
    mb,
    memory_figures,
    read_log,
    table,
)
from campaigns.barrage import QUEUES, Barrage, Step
from campaigns.farm import (
    BUILD_DEPS_DIR,
    DEFAULT_CATALOGUE,
    Farm,
    arguments,
    find_python,
    run_in_farm,
)
from campaigns.messages import (
    CATALOGUE,
    DECOY_PROJECT,
    DECOYS,
    FARM_ABIS,
    FORGED_LINE,
    REAL_ABI,
    REAL_LABEL,
)

# -- the whole campaign ---------------------------------------------------------------------------


SLAVE_QUEUES = ("slave", "insecure-slave")  # the secure one (a trusted key), the insecure one
FILE_QUEUES = ("file", "insecure-file")


def plan(b: Barrage, options: argparse.Namespace) -> list[tuple[float, Callable[[], Step]]]:
    """What starts when: the fuzzers, rogues and strangers at once, the floods at fixed points
    (apart, so that each one's memory is its own)."""
    seconds, connections, hellos = options.seconds, options.connections, options.hellos
    wanted = {
        "slave": connections + hellos + 500,
        "file": connections // 4 + options.frames * 8 + 100,
        "import": 100,
        "control": 20,
        "status": 10,
    }
    wanted["insecure-slave"], wanted["insecure-file"] = wanted["slave"], wanted["file"]
    b.reserve = {queue: min(n, options.messages // 2) for queue, n in wanted.items()}
    plans: list[tuple[float, Callable[[], Step]]] = [
        (0.0, lambda q=queue, k=kind: scenarios.fuzzer(b, q, k))
        for queue in (*SLAVE_QUEUES, *FILE_QUEUES, "import", "control")
        for kind in ("random", "bad-cbor", "shape", "mutate", "bigint")
    ]
    for queue in SLAVE_QUEUES:
        plans += [
            (0.0, lambda q=queue: scenarios.out_of_order(b, q)),
            (1.0, lambda q=queue: scenarios.identity_games(b, q)),
        ]
    plans += [
        (0.0, lambda: scenarios.monitors(b)),
        (0.0, lambda: rogues.importer(b)),
        (0.5, lambda: scenarios.replays(b)),
        (seconds * 0.10, lambda: scenarios.subscriptions(b)),
        (seconds * 0.12, lambda: scenarios.flood_connections(b, "slave", connections)),
        (seconds * 0.18, lambda: scenarios.flood_connections(b, "insecure-slave", connections)),
        (seconds * 0.22, lambda: scenarios.flood_connections(b, "file", connections // 4)),
        (seconds * 0.25, lambda: scenarios.flood_connections(b, "insecure-file", connections // 4)),
        (seconds * 0.30, lambda: scenarios.flood_hellos(b, "slave", hellos)),
        (seconds * 0.36, lambda: scenarios.flood_hellos(b, "insecure-slave", hellos)),
        (seconds * 0.42, lambda: scenarios.big_messages(b, options.frames)),
        (2.0, lambda: rogues.forger(b)),  # before the real slave builds the decoy it waits for
        (seconds * 0.60, lambda: rogues.forger(b, "insecure-slave")),
        # strangers on the secure queues
        (0.0, lambda: strangers.probe(b)),
        (0.5, lambda: strangers.knockers(b, "slave")),
        (0.7, lambda: strangers.knockers(b, "file")),
        (1.0, lambda: strangers.raw_knockers(b, "slave")),
        (1.2, lambda: strangers.raw_knockers(b, "file")),
        (3.0, lambda: strangers.revocations(b)),
        (seconds * 0.05, lambda: strangers.silent(b, "slave", options.silent)),
        (seconds * 0.66, lambda: strangers.flood_handshakes(b, "slave", options.handshakes)),
        (seconds * 0.76, lambda: strangers.flood_handshakes(b, "file", options.handshakes // 4)),
    ]
    for number in range(options.rogues):  # as many on each builder queue
        plans += [
            (0.2 * number, lambda n=number: rogues.rogue(b, n)),
            (
                0.1 + 0.2 * number,
                lambda n=number: rogues.rogue(b, options.rogues + n, SLAVE_QUEUES[1]),
            ),
        ]
    return plans


def catalogue_done(farm: Farm) -> bool:
    """Every catalogue version built (or failed) on the real slave's ABI, none still queued."""
    built_on_real = {(p, v) for p, v, abi, _, _ in farm.query(BUILDS_SQL) if abi == REAL_ABI}
    queued = {(p, v) for _, p, v in farm.query(QUEUE_SQL)}
    return all(c in built_on_real and c not in queued for c in CATALOGUE)


def wait_until_ready(farm: Farm, timeout: float) -> str | None:
    """Wait until the master has recorded the index and queued its builds; None when it
    has, else why not."""
    expected = len(CATALOGUE) + len(DECOYS)
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        assert farm.master is not None
        if farm.master.poll() is not None:
            return f"the master exited with status {farm.master.returncode} while starting"
        with contextlib.suppress(psycopg.Error):
            if len(farm.query(QUEUE_SQL)) >= expected:
                return None
        time.sleep(0.5)
    return f"the master did not queue the catalogue within {timeout:.0f} s"


def real_slave_figures(farm: Farm) -> dict[str, Any]:
    """What the real slave recorded of the catalogue, and everyone else's builds."""
    ids = farm.scan_log()[REAL_LABEL]
    builds = farm.query(BUILDS_SQL)
    real = [(p, v, abi, ok) for p, v, abi, ok, by in builds if by in ids]
    recorded = {(p, v) for p, v, abi, _ in real if abi == REAL_ABI}
    outcomes = {(p, v): ok for p, v, abi, ok in real if abi == REAL_ABI}
    wrong = [
        f"{p} {v}: {'built' if outcomes[(p, v)] else 'failed'}"
        for p, v in CATALOGUE
        if (p, v) in outcomes and outcomes[(p, v)] == (p == "piwtest-broken")
    ]
    others = Counter(
        f"{abi} {'success' if ok else 'failure'}"
        + (" (import)" if by == 0 else "" if by in ids else " (rogue)")
        for _, _, abi, ok, by in builds
        if by not in ids
    )
    return {
        "real_slave_ids": sorted(ids),
        "catalogue": len(CATALOGUE),
        "catalogue_recorded": len([c for c in CATALOGUE if c in recorded]),
        "catalogue_missing": [f"{p} {v}" for p, v in CATALOGUE if (p, v) not in recorded],
        "catalogue_wrong_outcome": wrong,
        "real_slave_builds": len(real),
        "other_builds": dict(sorted(others.items())),
        "still_queued": sorted(f"{abi} {p} {v}" for abi, p, v in farm.query(QUEUE_SQL)),
    }


def by_queue(counter: Counter[tuple[str, str]]) -> list[tuple[str, Any]]:
    rows = []
    for queue in QUEUES:
        items = sorted((k, n) for (q, k), n in counter.items() if q == queue)
        if items:
            total = sum(n for _, n in items)
            rows.append((queue, f"{total}: " + ", ".join(f"{k} {n}" for k, n in items)))
    return rows


LOGGED_REFUSALS = {
    "builders refused in the handshake (logged once a key)": re.compile(
        r"refused a builder from .*: its key .* is not trusted"
    ),
    "messages ignored: key not trusted (logged once a key)": re.compile(
        r"ignored a message (?:on the file queue )?from .*: its key .* is not trusted"
    ),
    "slaves dropped: key no longer trusted": re.compile(r"dropped: its key .* no longer trusted"),
}


def stranger_figures(b: Barrage, meter: Meter, log: Path) -> dict[str, Any]:
    """What the strangers got (must be nothing), what the master logged of them, and how it
    fared meanwhile: its memory around each handshake flood, and how soon it answered a
    trusted builder's HELLO on a new connection."""
    counts = b.handshakes
    by_kind: dict[str, dict[str, int]] = {}
    for (queue, kind, what), n in sorted(counts.items()):
        by_kind.setdefault(f"{queue} {kind}", {})[what] = n

    def total(test: Callable[[str], bool]) -> int:
        return sum(n for (_, _, what), n in counts.items() if test(what))

    text = log.read_text(errors="replace") if log.exists() else ""
    floods = {}
    for name, (start, end) in sorted(b.windows.items()):
        before = [s[1] for s in meter.between(start - 3, start)]
        after = [s[1] for s in meter.between(end + 8, end + 12)]
        floods[name] = {
            "seconds": round(end - start, 1),
            "rss_before_kb": statistics.median(before) if before else None,
            "rss_peak_kb": max((s[1] for s in meter.between(start, end + 5)), default=None),
            "rss_10s_after_kb": statistics.median(after) if after else None,
        }
    latencies = [latency for _, latency in b.probes if latency is not None]
    in_floods = [
        latency
        for when, latency in b.probes
        if latency is not None and any(s <= when <= e for s, e in b.windows.values())
    ]
    silent = sorted(b.silent_closed_after)
    return {
        "by_kind": by_kind,
        "connections": total(lambda what: what == "connections"),
        "refused": total(lambda what: what.startswith("refused")),
        "admitted": total(lambda what: what == "admitted"),
        "replies": total(lambda what: what == "replies"),
        "offered": total(lambda what: what in ("messages offered", "messages after revocation")),
        "told_error": total(lambda what: what == "told ERROR"),
        "closed_by_us": total(lambda what: what.startswith("closed by us")),
        "logged": {name: len(pattern.findall(text)) for name, pattern in LOGGED_REFUSALS.items()},
        "floods": floods,
        "probes": len(b.probes),
        "probes_unanswered": len(b.probes) - len(latencies),
        "probe_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "probe_max_s": round(max(latencies), 3) if latencies else None,
        "probe_max_in_floods_s": round(max(in_floods), 3) if in_floods else None,
        "silent_closed_after_s": (
            [round(silent[0], 1), round(statistics.median(silent), 1), round(silent[-1], 1)]
            if silent
            else None
        ),
    }


def stranger_report(figures: dict[str, Any]) -> list[str]:
    rows = [
        (kind, ", ".join(f"{what} {n}" for what, n in counts.items()))
        for kind, counts in figures["by_kind"].items()
    ]
    floods = [
        (
            f"{name}: RSS before / peak / 10 s after",
            (
                f"{mb(f['rss_before_kb'])} / {mb(f['rss_peak_kb'])} / "
                f"{mb(f['rss_10s_after_kb'])} (the flood took {f['seconds']} s)"
            ),
        )
        for name, f in figures["floods"].items()
    ]
    silent = figures["silent_closed_after_s"]
    return [
        "",
        "strangers on the secure queues (must get nothing)",
        table(rows),
        "",
        table(
            [
                ("connections", figures["connections"]),
                ("handshakes refused", figures["refused"]),
                ("closed by us mid-handshake", figures["closed_by_us"]),
                (
                    "no verdict seen before we closed them",
                    figures["connections"]
                    - figures["refused"]
                    - figures["admitted"]
                    - figures["closed_by_us"],
                ),
                ("admitted (must be 0)", figures["admitted"]),
                ("replies (must be 0)", figures["replies"]),
                ("messages offered (none may arrive)", figures["offered"]),
                ("told ERROR in the handshake (raw peers)", figures["told_error"]),
                *((f"master log: {k}", n) for k, n in figures["logged"].items()),
                *floods,
                (
                    "a trusted HELLO on a new connection: ACK after (s)",
                    (
                        f"median {figures['probe_median_s']}, max {figures['probe_max_s']}, "
                        f"max during the handshake floods {figures['probe_max_in_floods_s']}; "
                        f"unanswered {figures['probes_unanswered']} of {figures['probes']}"
                    ),
                ),
                (
                    "silent connections closed by the master after (s: min, median, max)",
                    silent or "none closed",
                ),
            ]
        ),
    ]


def report(figures: dict[str, Any]) -> str:
    master, memory = figures["master"], figures["memory"]
    files, builds, log = figures["files"], figures["builds"], figures["log"]
    out = [
        (
            f"hostile campaign, seed {figures['seed']}: barrage of {figures['barrage_s']:.1f} s "
            f"(planned {figures['planned_s']:.0f} s), at most {figures['budget']} messages a queue"
        ),
        "",
        "master",
        table(
            [
                ("alive at the end", "yes" if master["alive_at_end"] else "NO"),
                ("died", master["died"] or "no"),
                ("exit status when stopped", master["exit_on_stop"]),
                ("RSS at rest", mb(memory["rest_kb"])),
                (
                    "RSS peak during the barrage",
                    (
                        f"{mb(memory['peak_kb'])} at +{memory.get('peak_at_s', '-')} s "
                        f"({mb(memory['peak_with_children_kb'])} with its children)"
                    ),
                ),
                (
                    f"RSS {figures['after_s']:.0f} s after the barrage",
                    (
                        f"{mb(memory['after_kb'])} ({memory.get('after_over_rest', '-')} x rest; "
                        f"back near rest: {memory.get('back_near_rest', '-')})"
                    ),
                ),
                ("RSS at the end", mb(memory["last_kb"])),
                (
                    "RSS every 10 s (s from the barrage's start: MB)",
                    " ".join(f"{t}:{m}" for t, m in memory["timeline_mb"]),
                ),
                ("processes left behind, killed", master["leftovers"] or "none"),
            ]
        ),
        "",
        "messages sent, by queue and kind",
        "(slave, file: the secure queues, by a builder with a trusted key; insecure-*: the",
        " plain queues, by anyone)",
        table(by_queue(figures["sent"])),
        "",
        "replies received (status: messages published to our monitors)",
        table(by_queue(figures["replies"])),
    ]
    if figures["withheld"] or figures["dropped"]:
        out += [
            "",
            "not sent",
            table(
                [(f"withheld: {q} {k}", n) for (q, k), n in sorted(figures["withheld"].items())]
                + [
                    (f"not delivered (our HWM, or the master hung up): {q} {k}", n)
                    for (q, k), n in sorted(figures["dropped"].items())
                ]
            ),
        ]
    out += stranger_report(figures["strangers"])
    out += [
        "",
        "rogue and importer conversations",
        table(sorted(figures["notes"].items())),
        "",
        "the real slave",
        table(
            [
                ("died on its own", figures["slave_died"] or "no"),
                ("its ids", builds["real_slave_ids"]),
                (
                    "catalogue builds recorded",
                    f"{builds['catalogue_recorded']} of {builds['catalogue']}",
                ),
                ("missing", builds["catalogue_missing"] or "none"),
                ("wrong outcome", builds["catalogue_wrong_outcome"] or "none"),
                ("its builds in all", builds["real_slave_builds"]),
                ("other builds recorded", builds["other_builds"] or "none"),
                ("still queued", builds["still_queued"] or "none"),
            ]
        ),
        "",
        "files",
        table(
            [
                ("listed in the database", files["files_listed"]),
                (
                    "served under simple/ (wheels, .metadata, .provenance.json)",
                    files["files_served"],
                ),
                ("served, not listed (must be 0)", count(files["served_unlisted"])),
                ("listed, missing (must be 0)", count(files["listed_missing"])),
                ("listed, other bytes on disk", count(files["listed_other_bytes"])),
                ("temporary files left", count(files["temp_files_left"])),
                ("escaped the output", count(files["escaped_files"])),
            ]
        ),
        "",
        f"master log: {log['levels']}",
        f"ERROR / CRITICAL by kind ({len(log['errors_by_kind'])} kinds)",
        table([(k, n) for k, n in log["errors_by_kind"].most_common(40)]),
    ]
    if log["logging_errors"]:
        out += ["", "logging errors (a record that could not be written)"]
        out.append(table([(k, n) for k, n in log["logging_errors"].most_common()]))
    out += [
        "",
        f"log lines with control characters from peers: {log['control_character_lines']}",
        f"log lines forged by a peer: {log['forged_lines']}",
        "",
        f"crashed: {len(log['crashes'])}",
    ]
    for crash in log["crashes"]:
        out += ["  " + crash[0][:200], *("      " + line[:200] for line in crash[1:][-8:])]
    out += ["", f"verdict: {figures['verdict']}"]
    return "\n".join(out)


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = arguments(
        "Run a bounded hostile campaign against a piw-master of its own, on loopback, while "
        "one real piw-slave builds the tests' catalogue; print its figures."
    )
    parser.add_argument("--seconds", type=float, default=300, help="length of the barrage")
    parser.add_argument(
        "--messages", type=int, default=21_000, help="messages at most on each queue"
    )
    parser.add_argument("--seed", type=int, default=13, help="seed of every message's content")
    parser.add_argument(
        "--rogues", type=int, default=3, help="rogue slaves at once on each builder queue"
    )
    parser.add_argument("--connections", type=int, default=2000, help="connections in the flood")
    parser.add_argument("--hellos", type=int, default=2000, help="HELLOs in the flood")
    parser.add_argument("--frames", type=int, default=16, help="32 MB frames in a big message")
    parser.add_argument(
        "--handshakes",
        type=int,
        default=2000,
        help="handshakes in the strangers' flood on the secure slave queue (a quarter as many on "
        "the file queue), each from a key of its own that no one trusted",
    )
    parser.add_argument("--silent", type=int, default=200, help="connections that never say a word")
    parser.add_argument("--rest-seconds", type=float, default=10, help="measuring rest memory")
    parser.add_argument(
        "--after-seconds", type=float, default=30, help="when, after the barrage, to measure"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=240,
        help="at most this long after the barrage for the real slave to finish its catalogue",
    )
    return parser.parse_args(argv)


def raise_fd_limit() -> None:
    # 2,000 connections at once need 4,000 descriptors here; the master inherits the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 16384) if hard != resource.RLIM_INFINITY else 16384
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    python311 = find_python("3.11")
    if python311 is None:
        print("no CPython 3.11 under pyenv: the real slave needs one", file=sys.stderr)
        return 2
    if not any(BUILD_DEPS_DIR.glob("setuptools-*.whl")):
        print(f"no build dependencies in {BUILD_DEPS_DIR}: run scripts/fetch-build-deps")
        return 2
    raise_fd_limit()
    return run_in_farm(
        "piw-campaign-", options.keep, lambda farm: run_campaign(farm, python311, options)
    )


def run_campaign(farm: Farm, python311: Path, options: argparse.Namespace) -> int:
    print(f"setting up in {farm.work} ...", flush=True)
    farm.start_database()
    farm.start_index([*DEFAULT_CATALOGUE, *((DECOY_PROJECT, v, None) for v in DECOYS)])
    farm.start_master(
        (p for p, _, _ in DEFAULT_CATALOGUE),
        FARM_ABIS,
        "--dsn",
        make_conninfo(farm.dsn, user="piwheels"),  # the master's unprivileged role
        "--pypi-interval",
        "5",
        "--queue-interval",
        "1",
        # Forgotten rogues (2,000 flood HELLOs never followed up) are dropped within the 30 s
        # after the barrage, so the memory then says whether anything else was kept.
        "--slave-timeout",
        "20",
    )
    problem = wait_until_ready(farm, 120)
    if problem is not None:
        print(f"cannot run the campaign: {problem}\n--- master log (tail) ---")
        print("\n".join(farm.master_log.read_text(errors="replace").splitlines()[-40:]))
        return 2
    assert farm.master is not None
    meter = Meter(farm)
    meter.start()
    marks: dict[str, float] = {}
    time.sleep(2)
    marks["rest_start"] = time.monotonic()
    print(f"master {farm.master.pid} ready; measuring it at rest ...", flush=True)
    time.sleep(options.rest_seconds)
    barrage = Barrage(farm, options)
    died: list[str] = []

    def master_died() -> bool:
        assert farm.master is not None
        if farm.master.poll() is not None and not died:
            at = time.monotonic() - marks["barrage_start"]
            died.append(f"at +{at:.1f} s, exit status {farm.master.returncode}")
            barrage.event("the master died")
        farm.scan_log()
        farm.note_children()
        return bool(died)

    # long enough a master timeout that a master slowed by the barrage is waited for
    farm.start_slave(REAL_LABEL, python311, master_timeout=60)
    marks["barrage_start"] = barrage.started = time.monotonic()
    barrage.rate = options.messages / max(options.seconds * 0.85, 1)
    print(f"barrage: {options.seconds:.0f} s, {options.messages} messages a queue ...", flush=True)
    try:
        barrage.run(plan(barrage, options), marks["barrage_start"] + options.seconds, master_died)
        marks["barrage_end"] = time.monotonic()
        # The barrage's peers leave before the memory after it is read: what libzmq holds for a
        # connection still open is not memory the master kept.
        barrage.hang_up()
        print("barrage over; draining ...", flush=True)
        if not master_died():
            drain(barrage, farm, marks, options, master_died)
    finally:
        marks.setdefault("barrage_end", time.monotonic())
        barrage.close_all()
        meter.halt.set()
        meter.join()
    alive = not master_died()
    return finish(farm, barrage, meter, marks, options, alive, died)


def drain(
    barrage: Barrage,
    farm: Farm,
    marks: dict[str, float],
    options: argparse.Namespace,
    master_died: Callable[[], bool],
) -> None:
    """Let the real slave finish its catalogue: an honest slave of the rogues' ABI fails
    what the rogues left there, while memory is measured after the barrage."""
    after_until = marks["barrage_end"] + options.after_seconds + 4
    last_check = [0.0]

    def finished() -> bool:
        if master_died() or not farm.slaves[REAL_LABEL].running:
            return True  # nothing more will be built
        if time.monotonic() < after_until or time.monotonic() - last_check[0] < 2:
            return False
        last_check[0] = time.monotonic()
        with contextlib.suppress(psycopg.Error):
            return catalogue_done(farm)
        return False

    barrage.budget = 10**9  # the drain's own messages are not the barrage's
    barrage.run(
        [(0.0, lambda: rogues.rogue(barrage, 99, hostile=False))],
        marks["barrage_end"] + max(options.drain_seconds, options.after_seconds + 5),
        finished,
    )
    barrage.budget = options.messages


def finish(
    farm: Farm,
    barrage: Barrage,
    meter: Meter,
    marks: dict[str, float],
    options: argparse.Namespace,
    alive: bool,
    died: list[str],
) -> int:
    print("stopping the farm and auditing ...", flush=True)
    stopped = farm.stop_processes()
    builds_figures = real_slave_figures(farm)
    files = audit_files(farm)
    log = read_log(farm.master_log, FORGED_LINE)
    verdict_problems = []
    if not alive:
        verdict_problems.append("the master died")
    if files["served_unlisted"]:
        verdict_problems.append("files served that the database does not list")
    stranger = stranger_figures(barrage, meter, farm.master_log)
    if stranger["admitted"] or stranger["replies"]:
        verdict_problems.append("a stranger was admitted or answered on a secure queue")
    figures: dict[str, Any] = {
        "seed": options.seed,
        "planned_s": options.seconds,
        "barrage_s": marks["barrage_end"] - marks["barrage_start"],
        "after_s": options.after_seconds,
        "budget": options.messages,
        "master": {
            "alive_at_end": alive,
            "died": died[0] if died else None,
            "exit_on_stop": stopped.get("master_exit_on_stop"),
            "leftovers": stopped.get("leftovers_killed"),
        },
        "memory": memory_figures(meter, marks, options.after_seconds),
        "sent": barrage.sent,
        "replies": barrage.replies,
        "withheld": barrage.withheld,
        "dropped": barrage.dropped,
        "notes": barrage.notes,
        "strangers": stranger,
        "events": [(round(t - marks["barrage_start"], 1), e) for t, e in barrage.events],
        "builds": builds_figures,
        "slave_died": stopped["slaves_died"].get(REAL_LABEL),
        "files": files,
        "log": log,
        "verdict": "FAIL: " + "; ".join(verdict_problems) if verdict_problems else "pass",
    }
    print()
    print(report(figures))
    if options.json is not None:
        options.json.write_text(json.dumps(jsonable(figures), indent=1))
    return 1 if verdict_problems else 0


if __name__ == "__main__":
    sys.exit(main())
