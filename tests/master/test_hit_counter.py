"""The Hit Counter in a running master against what a hostile or broken piw-logger could send:
each request refused with its reason, the task still answering, nothing recorded of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
import zmq

from farm import MasterThread, rows
from piwheels import protocols
from piwheels.master_support.config import MasterConfig
from piwheels.protocols import Failure
from piwheels.records.hits import ClientRow, DailyHits, Download, HitBatch
from piwheels.transport import Socket

LOG = "0123456789abcdef" * 4
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
PIP = ClientRow("pip", "24.0", "CPython", "3.11.2", "3.11.2", "Linux", "6.1", "", "", "armv7l")
GOOD = HitBatch(
    LOG,
    0,
    1000,
    3,
    1,
    [PIP],
    [Download(NOW, "piwtest_pure-1.0-py3-none-any.whl", "piwtest-pure", 0)],
    [DailyHits("piwtest-pure", "search", NOW.replace(hour=0), 1)],
)


@pytest.fixture
def logger(master: MasterThread, farm_config: MasterConfig) -> Iterator[Socket]:
    context: zmq.Context[Any] = zmq.Context()
    with Socket(zmq.REQ, reversed(protocols.hit_counter), context=context) as sock:
        sock.connect(farm_config.log_queue)
        yield sock
    context.term()


def ask(sock: Socket, action: str, data: Any) -> Any:
    sock.send(action, data)
    assert sock.poll(30_000), f"no answer to {action}"
    return protocols.hit_counter.answer(action, *sock.recv())


BAD_BATCHES = [
    (GOOD._replace(log="not-hex"), "sha256 of its first line"),
    (GOOD._replace(start=2000), "ends after it starts"),
    (GOOD._replace(bad_lines=-1), "positive"),
    (GOOD._replace(clients=[PIP._replace(os="x" * 101)]), "at most 100 characters"),
    (GOOD._replace(downloads=[GOOD.downloads[0]._replace(client=1)]), "does not describe"),
    (GOOD._replace(downloads=[GOOD.downloads[0]._replace(project="PiwTest_Pure")]), "canonical"),
    (GOOD._replace(downloads=[GOOD.downloads[0]._replace(filename="")]), "1 to 255"),
    (GOOD._replace(hits=[GOOD.hits[0]._replace(kind="download")]), "never negative"),
    (GOOD._replace(hits=[GOOD.hits[0]._replace(hits=-5)]), "never negative"),
]


def test_a_bad_batch_is_refused_and_nothing_recorded(
    logger: Socket, farm_config: MasterConfig
) -> None:
    for batch, why in BAD_BATCHES:
        answer = ask(logger, "HITS", batch)
        assert isinstance(answer, Failure)
        assert (answer.kind, why in answer.message) == ("refused", True), answer
    assert rows(farm_config.dsn, "SELECT count(*)::int FROM log_cursors") == [(0,)]
    # and the task goes on: the good batch is recorded, once
    assert ask(logger, "HITS", GOOD) is None
    stale = ask(logger, "HITS", GOOD)
    assert isinstance(stale, Failure)
    assert stale.kind == "stale"
    assert ask(logger, "CURSOR", LOG) == 1000
    assert rows(farm_config.dsn, "SELECT count(*)::int FROM downloads") == [(1,)]


def test_garbage_gets_an_error_and_the_task_goes_on(
    logger: Socket, farm_config: MasterConfig
) -> None:
    context: zmq.Context[Any] = zmq.Context()
    raw = context.socket(zmq.REQ)
    raw.connect(farm_config.log_queue)
    try:
        for payload in (
            b"\xff\x00 not cbor",
            cbor2.dumps(["CURSOR", 10**5000]),  # past Python's int-to-str limit
            cbor2.dumps(["HITS", [LOG, 0]]),
            cbor2.dumps(["DELETE", "everything"]),
        ):
            raw.send(payload)
            assert raw.poll(30_000)
            action, kind, _ = cbor2.loads(raw.recv())  # a record's fields after its action
            assert (action, kind) == ("ERROR", "malformed")
    finally:
        raw.close(linger=0)
        context.term()
    answer = ask(logger, "CURSOR", "../../etc/passwd")
    assert isinstance(answer, Failure)
    assert answer.kind == "refused"
    assert ask(logger, "CURSOR", LOG) == 0
