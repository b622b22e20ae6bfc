"""How fast PyPIClient takes in PyPI's whole project list, and diffs it against known serials.

A synthetic PEP 691 root index of N projects (PyPI has ~930,000: ~60 MB of JSON) is served from
127.0.0.1. Each figure is printed beside a reference measured in the same run on the same data,
as a ratio, so the numbers mean something on any machine:

* fetch: the same GET with urllib, body read (and gunzipped) and dropped: the network's part;
* list_projects(): against fetch + a bare ``json.loads`` of the same bytes;
* diff_serials(): against the symmetric difference of the two key sets;
* peak memory (tracemalloc) of list_projects() against that of the bare ``json.loads``.

Run: ``python bench/bench_pypi.py [--projects N] [--repeat R] [--gzip]``, or with every other
benchmark through ``bench/run`` (sizes ``pypi.projects``, ``pypi.repeat``, ``pypi.gzip``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import threading
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness import Row, Sizes, best_of, print_rows

from piwheels.pypi.answers import ProjectSerial, diff_serials
from piwheels.pypi.client import PyPIClient

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
WORDS = ["py", "django", "flask", "lib", "tool", "data", "net", "Foo", "Bar", "zope", "oslo", "x"]


def make_index(count: int, seed: int = 1) -> tuple[bytes, int]:
    """A root index of *count* projects, names spelt as PyPI shows them (some not canonical)."""
    rng = random.Random(seed)
    top = count * 30
    projects = [
        {
            "name": f"{rng.choice(WORDS)}{rng.choice(['-', '_', '.', ''])}{rng.choice(WORDS)}{i}",
            "_last-serial": rng.randrange(1, top),
        }
        for i in range(count)
    ]
    document = {"meta": {"api-version": "1.1", "_last-serial": top}, "projects": projects}
    return json.dumps(document).encode(), top


@contextmanager
def serve(body: bytes, serial: int, *, gzipped: bool) -> Iterator[str]:
    headers = {"Content-Type": SIMPLE_JSON, "X-PyPI-Last-Serial": str(serial)}
    if gzipped:
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def peak_mib(run: Callable[[], object]) -> tuple[float, float]:
    """(peak, retained) MiB of Python allocations while *run* runs and once it has returned."""
    tracemalloc.start()
    try:
        result = run()
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak / 2**20, retained / 2**20


def perturb(projects: dict[str, ProjectSerial], seed: int = 2) -> dict[str, int]:
    """Known serials as a follower would have them: 0.1% stale, 0.01% new, 0.01% removed."""
    rng = random.Random(seed)
    known = {key: entry.serial for key, entry in projects.items()}
    keys = list(known)
    for key in rng.sample(keys, max(1, len(keys) // 1000)):
        known[key] -= 1
    for key in rng.sample(keys, max(1, len(keys) // 10000)):
        del known[key]
    for i in range(max(1, len(keys) // 10000)):
        known[f"gone-{i}"] = 1
    return known


SIZES: dict[str, int] = {"projects": 1_000_000, "repeat": 3, "gzip": 0}
QUICK: dict[str, int] = {"projects": 10_000, "repeat": 1}


def run(sizes: Sizes) -> list[Row]:
    """The bench/run interface: sizes as in SIZES (gzip: 1 to serve the index compressed)."""
    count, repeat, gzipped = int(sizes["projects"]), int(sizes["repeat"]), bool(sizes["gzip"])
    body, serial = make_index(count)
    print(f"{count:,} projects, {len(body) / 1e6:.1f} MB of JSON, best of {repeat}")
    with serve(body, serial, gzipped=gzipped) as base:
        client = PyPIClient(f"{base}/simple/", f"{base}/pypi", timeout=60)

        def fetch() -> bytes:
            with urllib.request.urlopen(f"{base}/simple/", timeout=60) as response:
                data = response.read()
            return gzip.decompress(data) if gzipped else data

        fetched = best_of(repeat, fetch)
        parsed = best_of(repeat, lambda: json.loads(body))
        listed = best_of(repeat, client.list_projects)
        result = client.list_projects()
        assert len(result.projects) == count, len(result.projects)
        peak, retained = peak_mib(client.list_projects)
        bare_peak, bare_retained = peak_mib(lambda: json.loads(body))

    known = perturb(result.projects)
    changed, removed = diff_serials(known, result.projects)
    diffed = best_of(repeat, lambda: diff_serials(known, result.projects))
    keys = best_of(repeat, lambda: known.keys() ^ result.projects.keys())
    print(f"fetch alone (urllib, no parse): {fetched:.3f} s")
    print(f"diff found {len(changed):,} changed or new and {len(removed):,} removed")
    return [
        Row("list_projects()", listed, fetched + parsed, "s", "fetch + bare json.loads"),
        Row("  of which beyond the fetch", listed - fetched, parsed, "s", "bare json.loads"),
        Row("diff_serials()", diffed, keys, "s", "keys() ^ keys()"),
        Row("peak memory, list_projects", peak, bare_peak, "MiB", "peak, bare json.loads"),
        Row("retained, list_projects", retained, bare_retained, "MiB", "retained, bare json.loads"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=SIZES["projects"], help="size of the index")
    parser.add_argument(
        "--repeat", type=int, default=SIZES["repeat"], help="best of this many runs"
    )
    parser.add_argument("--gzip", action="store_true", help="serve the index gzip-compressed")
    args = parser.parse_args(argv)
    print_rows(run({"projects": args.projects, "repeat": args.repeat, "gzip": int(args.gzip)}))


if __name__ == "__main__":
    main()
