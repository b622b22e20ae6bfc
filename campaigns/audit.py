"""What a farm left behind, measured: files served against the database, builds, the master's
log and memory; and the tables a campaign prints them in."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import threading
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from campaigns.farm import Farm, descendants, rss_kb
from piwheels.provenance import SUFFIX as PROVENANCE_SUFFIX
from piwheels.web.layout import log_path

QUEUE_SQL = """
    SELECT q.abi_tag, v.package, v.version FROM build_queue q JOIN versions v USING (version_id)
"""
BUILDS_SQL = """
    SELECT v.package, v.version, b.abi_tag, b.status, b.built_by
    FROM builds b JOIN versions v USING (version_id)
"""
FILES_SQL = """
    SELECT f.filename, v.package, f.filesize, f.filehash
    FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
"""


# -- what the master left behind ----------------------------------------------------------------

PAGES = frozenset({"index.html", "index.json"})


def audit_files(farm: Farm) -> dict[str, Any]:
    """Compare what is under OUTPUT/simple/ with the database's files table."""
    listed: dict[str, tuple[str, int, str]] = {}
    for filename, package, size, sha in farm.query(FILES_SQL):
        listed[filename] = (canonicalize_name(package), size, sha.strip())
    simple = farm.output / "simple"
    unlisted, temp, mismatched, served = [], [], [], 0
    for path in sorted(simple.rglob("*")) if simple.is_dir() else []:
        if path.is_dir() and not path.is_symlink():
            continue
        relative = path.relative_to(simple)
        parts = relative.parts
        if path.name.startswith("."):  # a temporary file: nginx and Apache serve no dotfile
            temp.append(str(relative))
            continue
        if path.name in PAGES and len(parts) <= 2 and not path.is_symlink():
            continue
        served += 1
        # a listed wheel, its .metadata, or its signed provenance (<wheel>.provenance.json)
        wheel = path.name.removesuffix(".metadata").removesuffix(PROVENANCE_SUFFIX)
        entry = listed.get(wheel)
        if path.is_symlink() or len(parts) != 2 or entry is None or entry[0] != parts[0]:
            unlisted.append(str(relative))
            continue
        if path.name == wheel:
            data = path.read_bytes()
            if len(data) != entry[1] or hashlib.sha256(data).hexdigest() != entry[2]:
                mismatched.append(str(relative))
    missing = [
        name for name, (package, _, _) in listed.items() if not (simple / package / name).is_file()
    ]
    # Anything a hostile name could have put outside the output, in the campaign's directory.
    escaped = [
        str(p.relative_to(farm.work)) for p in farm.work.rglob("*evil*") if "slaves" not in p.parts
    ]
    escaped += [str(p.relative_to(farm.output)) for p in farm.output.glob("*.whl")]
    return {
        "files_listed": len(listed),
        "files_served": served,
        "served_unlisted": unlisted,
        "listed_missing": missing,
        "listed_other_bytes": mismatched,
        "temp_files_left": temp,
        "escaped_files": escaped,
    }


COVER_SQL = """
    SELECT v.package, v.version, a.abi_tag, count(*) FILTER (WHERE b.status)
    FROM builds b JOIN versions v USING (version_id) CROSS JOIN build_abis a
    WHERE b.abi_tag = a.abi_tag OR (b.status AND b.covers_from <= a.python_order)
    GROUP BY v.package, v.version, a.abi_tag
"""
VERSION_FILES_SQL = """
    SELECT v.package, v.version, count(*)
    FROM files f JOIN builds b USING (build_id) JOIN versions v USING (version_id)
    GROUP BY v.package, v.version
"""


def audit_builds(
    farm: Farm, expected: dict[tuple[str, str], tuple[tuple[str, ...], int]]
) -> dict[str, list[str]]:
    """Against *expected* ((project, version) -> (ABIs each needing a wheel, wheels)): the
    (version, ABI) pairs no successful build serves, the successful builds one too many,
    and the versions with more files than wheels wanted."""
    served = {(canonicalize_name(p), v, abi): n for p, v, abi, n in farm.query(COVER_SQL)}
    files = {(canonicalize_name(p), v): n for p, v, n in farm.query(VERSION_FILES_SQL)}
    lost, duplicated, extra_files = [], [], []
    for (project, version), (abis, wheels) in sorted(expected.items()):
        key = (canonicalize_name(project), version)
        for abi in abis:
            builds = served.get((*key, abi), 0)
            if builds == 0:
                lost.append(f"{project} {version} {abi}")
            elif builds > 1:
                duplicated.append(f"{project} {version} {abi}: {builds} successful builds")
        if files.get(key, 0) > wheels:
            extra_files.append(f"{project} {version}: {files[key]} files, {wheels} wanted")
    return {"lost": lost, "duplicated": duplicated, "files_twice": extra_files}


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def audit_pages(farm: Farm) -> list[str]:
    """What the pages fail to show: every recorded file in its project's simple index (JSON
    and HTML) with its .metadata (if the wheel is a zip), its build as built on the project's
    JSON page, and every recorded build's log."""
    missing = []
    rows = farm.query(
        "SELECT f.filename, v.package, f.build_id FROM files f"
        " JOIN builds b USING (build_id) JOIN versions v USING (version_id)"
    )
    for filename, package, build_id in rows:
        name = canonicalize_name(package)
        index = farm.output / "simple" / name
        listed = read_json(index / "index.json") or {"files": []}
        if filename not in {f.get("filename") for f in listed["files"]}:
            missing.append(f"simple/{name}/index.json does not list {filename}")
        try:
            html = (index / "index.html").read_text()
        except OSError:
            html = ""
        if f'href="{filename}' not in html:
            missing.append(f"simple/{name}/index.html does not link {filename}")
        wheel = index / filename
        if zipfile.is_zipfile(wheel) and not wheel.with_name(f"{filename}.metadata").is_file():
            missing.append(f"no {filename}.metadata")
        project = read_json(farm.output / "project" / name / "json" / "index.json") or {}
        builds = [b for v in project.get("versions", []) for b in v["builds"]]
        if not any(b["build_id"] == build_id and b["status"] == "built" for b in builds):
            missing.append(f"project/{name}/json does not show build {build_id} as built")
    for (build_id,) in farm.query("SELECT build_id FROM builds"):
        if not (farm.output / log_path(build_id)).is_file():
            missing.append(f"no log of build {build_id}")
    return missing


LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<thread>.+?)\s+"
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+(?P<message>.*)$"
)


def kind_of(thread: str, message: str) -> str:
    """A log message with what varies (numbers, quoted values, details) taken out."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", message)
    text = re.sub(r"0x[0-9a-f]+|\d+", "N", text)
    text = re.sub(r"\s*\(.*", "", text)
    return f"{thread}: {': '.join(text.split(': ')[:3])}"[:110]


def read_log(path: Path, forged: str = "\0") -> dict[str, Any]:
    """Count the master's ERROR and CRITICAL lines by kind; collect every crash. Lines holding
    *forged* (a whole log line a peer sent) are counted apart."""
    errors: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    control = 0  # lines holding control characters a peer sent (a terminal obeys them)
    crashes: list[list[str]] = []
    logging_errors: Counter[str] = Counter()
    current: list[str] | None = None  # the crash whose traceback is being read
    in_logging_error = False
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    for line in lines:
        control += bool(re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line))
        if forged in line:  # counted apart: no CRITICAL of the master's own
            continue
        match = LOG_LINE.match(line)
        if match is None:
            if line.startswith("--- Logging error ---"):
                in_logging_error = True
            elif in_logging_error and re.match(r"^\w+(Error|Exception)\b", line):
                logging_errors[line[:110]] += 1
                in_logging_error = False
            if current is not None and line.strip():
                current.append(line)
            continue
        in_logging_error = False
        current = None
        levels[match["level"]] += 1
        if match["level"] in ("ERROR", "CRITICAL"):
            errors[f"{match['level']} {kind_of(match['thread'].strip(), match['message'])}"] += 1
        if "crashed" in match["message"]:
            current = [line]
            crashes.append(current)
    return {
        "levels": dict(levels),
        "errors_by_kind": errors,
        "crashes": crashes,
        "logging_errors": logging_errors,
        "control_character_lines": control,
        "forged_lines": sum(forged in line for line in lines),
    }


# -- measuring the master -----------------------------------------------------------------------


class Meter(threading.Thread):
    """Samples the master's resident memory (its own, and with its children) four times a
    second, and remembers the processes it started so that none is left behind. It follows
    the farm's master through restarts."""

    def __init__(self, farm: Farm) -> None:
        super().__init__(name="meter", daemon=True)
        self.farm = farm
        self.samples: list[tuple[float, int, int]] = []  # (time, master kB, with children kB)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.25):
            master = self.farm.master
            own = None if master is None else rss_kb(master.pid)
            if master is None or own is None or master.poll() is not None:
                continue
            children = descendants(master.pid)
            self.farm.known_children.update(children)
            total = own + sum(rss_kb(pid) or 0 for pid in children)
            self.samples.append((time.monotonic(), own, total))

    def between(self, start: float, end: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if start <= s[0] <= end]


# -- the report ---------------------------------------------------------------------------------


def mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f} MB"


def memory_figures(meter: Meter, marks: dict[str, float], after: float) -> dict[str, Any]:
    rest = [s[1] for s in meter.between(marks["rest_start"], marks["barrage_start"])]
    during = meter.between(marks["barrage_start"], marks["barrage_end"] + 5)
    target = marks["barrage_end"] + after
    later = [s[1] for s in meter.between(target - 3, target + 3)]
    figures: dict[str, Any] = {
        "rest_kb": statistics.median(rest) if rest else None,
        "peak_kb": max((s[1] for s in during), default=None),
        "peak_with_children_kb": max((s[2] for s in during), default=None),
        "after_kb": statistics.median(later) if later else None,
        "last_kb": meter.samples[-1][1] if meter.samples else None,
    }
    if during:
        when = max(during, key=lambda s: s[1])[0]
        figures["peak_at_s"] = round(when - marks["barrage_start"], 1)
    start = marks["rest_start"]
    figures["timeline_mb"] = [
        (round(t - marks["barrage_start"]), round(own / 1024))
        for t, own, _ in meter.samples[:: max(int(10 / 0.25), 1)]
        if t >= start
    ]
    if figures["rest_kb"] and figures["after_kb"]:
        ratio = figures["after_kb"] / figures["rest_kb"]
        figures["after_over_rest"] = round(ratio, 2)
        # Near rest: within a quarter, or 32 MB, of it (malloc keeps some freed memory).
        figures["back_near_rest"] = figures["after_kb"] <= max(
            figures["rest_kb"] * 1.25, figures["rest_kb"] + 32 * 1024
        )
    return figures


def table(rows: list[tuple[str, Any]]) -> str:
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def count(items: list[str]) -> str:
    return f"{len(items)}" + (f": {', '.join(items[:10])}" if items else "")


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            (" / ".join(k) if isinstance(k, tuple) else str(k)): jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
