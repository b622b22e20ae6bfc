"""How fast the web renderers turn records into pages, and write the index root.

Each figure is printed beside a reference measured in the same run on the same data, as a ratio,
so the numbers mean something on any machine:

* project pages: realistic records (20 versions x 4 ABIs, a failed build now and then with its
  retry, about three wheels a version, a 2 kB description) rendered by project_page,
  project_json and simple_project, against a bare ``json.dumps`` of the same records (no
  formatting, no escaping: the least any renderer must do). Pages per second are also measured
  with two processes, one per core of the target machine (the goal: 1,000 pages a second);
* the index root with N projects (PyPI has ~930,000): simple_root against a bare ``json.dumps``
  of the same PEP 691 dict (the JSON form alone, done the obvious way), and write_atomic of both
  forms against a plain open/write of the same bytes (no fsync, no rename).

Run: ``python bench/bench_pages.py [--projects N] [--names N] [--repeat R]``, or with every other
benchmark through ``bench/run`` (sizes ``pages.projects``, ``pages.names``, ``pages.repeat``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Row, Sizes, best_of, print_rows
from packaging.utils import canonicalize_name

from piwheels.records.builds import BuildState
from piwheels.records.projects import AbiCell, BuildInfo, ProjectData, VersionInfo, WheelFile
from piwheels.web import index, pages
from piwheels.web.writer import write_atomic

PAGES_GOAL = 1_000  # project pages a second on the target machine's two cores
ABIS = ["cp39", "cp311", "cp312", "cp313"]
WORDS = ["py", "django", "flask", "lib", "tool", "data", "net", "foo", "bar", "zope", "oslo", "x"]


def make_project(seed: int) -> ProjectData:
    """A project as the farm would hold it after a few years: 20 versions on 4 ABIs."""
    rng = random.Random(seed)
    name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}{seed}"
    dist = name.replace("-", "_")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    build_ids = iter(range(seed * 1000 + 1, seed * 1000 + 1000))
    versions = []
    for number in range(20, 0, -1):
        version = f"{number // 10}.{number % 10}.{rng.randrange(3)}"
        released = start + timedelta(days=number * 30, seconds=rng.randrange(86400))
        cells, builds, files = {}, [], []
        for abi in ABIS:
            attempts = [rng.random() > 0.1 for _ in range(2 if rng.random() < 0.1 else 1)]
            for ok in attempts:
                build = BuildInfo(
                    next(build_ids),
                    abi,
                    ok,
                    released + timedelta(hours=1),
                    timedelta(seconds=rng.randrange(20, 900)),
                    rng.randrange(1, 9),
                )
                builds.append(build)
            last = builds[-1]
            if last.status:
                cells[abi] = AbiCell(BuildState.BUILT, "", last.build_id)
                files.append(
                    WheelFile(
                        f"{dist}-{version}-{abi}-{abi}-linux_armv7l.whl",
                        rng.randrange(20_000, 5_000_000),
                        rng.randbytes(32).hex(),
                        ">=3.9",
                        last.built_at,
                        None,
                        rng.randbytes(32).hex(),
                        abi,
                        ("libc6", "libssl3") if rng.random() < 0.3 else (),
                    )
                )
            else:
                cells[abi] = AbiCell(BuildState.FAILED, "", last.build_id)
        versions.append(VersionInfo(version, released, number == 7, "", cells, builds, files))
    return ProjectData(
        name,
        name.title(),
        "A realistic summary of a realistic project & its <features>",
        ("Some README text with a [link](https://example.org) and `code`.\n" * 32),
        ABIS,
        versions,
    )


def make_names(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return sorted(
        {canonicalize_name(f"{rng.choice(WORDS)}.{rng.choice(WORDS)}_{i}") for i in range(count)}
    )


def render_all(renderer: Callable[[ProjectData], object], projects: list[ProjectData]) -> None:
    for project in projects:
        renderer(project)


def _worker(args: tuple[int, int]) -> float:
    """Render project pages for *rounds* rounds in a fresh process; returns its busy seconds."""
    count, rounds = args
    projects = [make_project(seed) for seed in range(count)]
    page = render_page
    render_all(page, projects)  # warm: templates loaded and compiled
    start = time.perf_counter()
    for _ in range(rounds):
        render_all(page, projects)
    return time.perf_counter() - start


def render_page(project: ProjectData) -> str:
    return pages.project_page(project, apt_dependencies=["libc6"])


def bench_pages(count: int, repeat: int) -> list[Row]:
    projects = [make_project(seed) for seed in range(count)]
    sample = projects[0]
    files = sum(len(p.files) for p in projects) / count
    builds = sum(len(v.builds) for p in projects for v in p.versions) / count
    size = len(render_page(sample))
    print(
        f"{count} projects: {len(sample.versions)} versions x {len(ABIS)} ABIs, "
        f"{files:.0f} files and {builds:.0f} builds each on average; a page is ~{size // 1000} kB"
    )
    bare = best_of(repeat, lambda: [json.dumps(p, default=str) for p in projects]) / count

    def per_page(renderer: Callable[[ProjectData], object]) -> float:
        return best_of(repeat, lambda: render_all(renderer, projects)) / count

    page = per_page(render_page)
    data = per_page(lambda p: pages.project_json(p, ["libc6"]))
    simple = per_page(index.simple_project)
    bare_name = "bare json.dumps of the record"
    rows = [
        Row("project_page", page * 1e3, bare * 1e3, "ms/page", bare_name),
        Row("project_json", data * 1e3, bare * 1e3, "ms/page", bare_name),
        Row("simple_project (HTML + JSON)", simple * 1e3, bare * 1e3, "ms/page", bare_name),
    ]
    total = page + data + simple
    rows += [
        Row("all four files of a project", total * 1e3, bare * 1e3, "ms", bare_name),
        Row(
            "project pages, 1 process", 1 / page, 1 / bare, "pages/s", "bare json.dumps, 1 process"
        ),
    ]

    rounds = max(1, int(2.0 / (page * count)))  # about two seconds of work per process
    with multiprocessing.get_context("fork").Pool(2) as pool:
        busy = pool.map(_worker, [(count, rounds)] * 2)
    two = 2 * count * rounds / max(busy)
    rows.append(
        Row(
            "project pages, 2 processes",
            two,
            1 / page,
            "pages/s",
            "project pages, 1 process",
            f">= {PAGES_GOAL:,} pages/s",
            two >= PAGES_GOAL,
        )
    )
    return rows


def bench_root(count: int, repeat: int) -> list[Row]:
    names = make_names(count)
    html, body = index.simple_root(names)
    print(
        f"\nindex root: {len(names):,} projects, {len(html) / 1e6:.1f} MB of HTML and "
        f"{len(body) / 1e6:.1f} MB of JSON"
    )
    rendered = best_of(repeat, lambda: index.simple_root(names))
    naive = best_of(
        repeat,
        lambda: json.dumps(
            {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
        ),
    )
    html_bytes = html.encode()
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as work:
        root = Path(work)

        def atomic() -> None:
            write_atomic(root / "index.html", html)
            write_atomic(root / "index.json", body)

        def plain() -> None:
            with (root / "plain.html").open("wb") as file:
                file.write(html_bytes)
            with (root / "plain.json").open("wb") as file:
                file.write(body)

        written = best_of(repeat, atomic)
        plainly = best_of(repeat, plain)
    return [
        Row("simple_root (HTML + JSON)", rendered, naive, "s", "bare json.dumps (JSON only)"),
        Row("write_atomic, both files", written, plainly, "s", "plain open/write, no fsync"),
        Row(
            "root, rendered and written",
            rendered + written,
            naive + plainly,
            "s",
            "json.dumps + plain writes",
        ),
    ]


SIZES: dict[str, int] = {"projects": 200, "names": 1_000_000, "repeat": 3}
QUICK: dict[str, int] = {"projects": 5, "names": 10_000, "repeat": 1}


def run(sizes: Sizes) -> list[Row]:
    """The bench/run interface: sizes as in SIZES."""
    repeat = int(sizes["repeat"])
    return bench_pages(int(sizes["projects"]), repeat) + bench_root(int(sizes["names"]), repeat)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--projects", type=int, default=SIZES["projects"], help="distinct projects rendered"
    )
    parser.add_argument("--names", type=int, default=SIZES["names"], help="projects in the root")
    parser.add_argument(
        "--repeat", type=int, default=SIZES["repeat"], help="best of this many runs"
    )
    args = parser.parse_args(argv)
    print_rows(run({"projects": args.projects, "names": args.names, "repeat": args.repeat}))


if __name__ == "__main__":
    main()
