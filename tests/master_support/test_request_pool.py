"""RequestPool: several requests in flight from one task, answers to the right callbacks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from farm import make_config
from piwheels import protocols
from piwheels.master_support.request_pool import RequestPool
from piwheels.master_support.task import Task
from piwheels.message_codec import decode, encode
from piwheels.protocols import Failure
from piwheels.transport import Socket

SERVICE = "inproc://test-service"
ORACLE = protocols.oracle  # the service's side: receives requests, sends OK / ERROR


@pytest.fixture
def service(context: zmq.Context[Any]) -> Iterator[zmq.Socket[Any]]:
    """A ROUTER standing in for the Oracles: the test decides when, and in what order, each
    request is answered."""
    sock = context.socket(zmq.ROUTER)
    sock.bind(SERVICE)
    yield sock
    sock.close(linger=0)


@pytest.fixture
def task(tmp_path: Path, context: zmq.Context[Any]) -> Iterator[Task]:
    running = Task(make_config("", tmp_path, tmp_path, ["cp311"]), context)
    yield running
    running.close()


def take(service: zmq.Socket[Any], count: int) -> list[tuple[bytes, str, Any]]:
    """The next *count* requests that reach the service, as (peer, action, data)."""
    taken = []
    for _ in range(count):
        assert service.poll(5000), "a request never reached the service"
        peer, empty, raw = service.recv_multipart()
        assert empty == b""
        taken.append((peer, *decode(ORACLE, raw)))
    return taken


def answer(service: zmq.Socket[Any], peer: bytes, payload: bytes) -> None:
    service.send_multipart([peer, b"", payload])


def pump(task: Task, until: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "the answer never came back"
        task.poll(0.05)


def test_answers_reach_their_callbacks_in_any_order(task: Task, service: zmq.Socket) -> None:
    pool = RequestPool(task, SERVICE, reversed(ORACLE), size=2, timeout=30, name="test service")
    answers: dict[str, tuple[str, Any]] = {}
    for name in ("a", "b", "c"):
        pool.ask(
            "PKGEXISTS",
            name,
            lambda status, result, name=name: answers.update({name: (status, result)}),
        )
    # two sockets: two requests out at once, the third waits for one of them to come back
    (peer_a, _, data_a), (peer_b, _, data_b) = take(service, 2)
    assert {data_a, data_b} == {"a", "b"}
    assert not service.poll(200)
    assert pool.busy == 3
    answer(service, peer_b, encode(ORACLE, "OK", False))
    pump(task, lambda: data_b in answers)
    assert answers == {data_b: ("OK", False)}
    [(peer_c, _, data_c)] = take(service, 1)
    assert data_c == "c"
    answer(service, peer_c, encode(ORACLE, "ERROR", Failure("not-found", "no such package")))
    answer(service, peer_a, encode(ORACLE, "OK", True))
    pump(task, lambda: len(answers) == 3)
    assert answers[data_a] == ("OK", True)
    assert answers["c"] == ("ERROR", Failure("not-found", "no such package"))
    assert pool.busy == 0


def test_an_unanswered_request_fails_and_the_pool_goes_on(task: Task, service: zmq.Socket) -> None:
    pool = RequestPool(task, SERVICE, reversed(ORACLE), size=1, timeout=0.2, name="test service")
    answers: list[tuple[str, Any]] = []
    pool.ask("GETSERIAL", then=lambda *a: answers.append(a))
    take(service, 1)  # and never answered
    time.sleep(0.3)
    pump(task, lambda: answers)
    why = "GETSERIAL: no answer from the test service within 0.2s"
    assert answers == [("ERROR", Failure("timeout", why))]
    # the stuck REQ socket was replaced: the next request is sent and answered
    pool.ask("GETSERIAL", then=lambda *a: answers.append(a))
    [(peer, action, _)] = take(service, 1)
    assert action == "GETSERIAL"
    answer(service, peer, encode(ORACLE, "OK", 42))
    pump(task, lambda: len(answers) == 2)
    assert answers[1] == ("OK", 42)


def test_a_malformed_answer_is_an_error(task: Task, service: zmq.Socket) -> None:
    pool = RequestPool(task, SERVICE, reversed(ORACLE), size=1, timeout=30, name="test service")
    answers: list[tuple[str, Any]] = []
    pool.ask("GETSERIAL", then=lambda *a: answers.append(a))
    [(peer, _, _)] = take(service, 1)
    answer(service, peer, b"\xff not cbor")
    pump(task, lambda: answers)
    assert answers[0][0] == "ERROR"
    assert "malformed answer" in answers[0][1].message
    assert answers[0][1].kind == "malformed"


def test_an_answer_of_another_shape_than_its_request_declares_is_an_error(
    task: Task, service: zmq.Socket
) -> None:
    pool = RequestPool(task, SERVICE, reversed(ORACLE), size=1, timeout=30, name="test service")
    answers: list[tuple[str, Any]] = []
    pool.ask("GETSERIAL", then=lambda *a: answers.append(a))  # answered by an int
    [(peer, _, _)] = take(service, 1)
    answer(service, peer, encode(ORACLE, "OK", "forty-two"))
    pump(task, lambda: answers)
    assert answers[0][0] == "ERROR"
    assert answers[0][1].kind == "malformed"
    assert "GETSERIAL reply" in answers[0][1].message


def test_a_request_that_cannot_be_sent_is_an_error_at_once(task: Task, service: zmq.Socket) -> None:
    pool = RequestPool(task, SERVICE, reversed(ORACLE), size=1, timeout=30, name="test service")
    answers: list[tuple[str, Any]] = []
    pool.ask("NOSUCHTHING", then=lambda *a: answers.append(a))
    assert answers and answers[0][0] == "ERROR"
    assert pool.busy == 0
    assert not service.poll(100)


def test_sockets_are_closed_with_the_task(task: Task, service: zmq.Socket) -> None:
    pool = RequestPool(task, SERVICE, reversed(ORACLE), size=3, timeout=30, name="test service")
    sockets = list(pool.free)
    assert all(isinstance(sock, Socket) for sock in sockets)
    task.close()
    assert all(sock.zsock.closed for sock in sockets)
