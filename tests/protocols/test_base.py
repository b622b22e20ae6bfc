"""What a protocol is: its two ends, and the OK/ERROR replies of the master's request queues."""

from __future__ import annotations

import pytest

from piwheels.codec import AnyValue, Int, ListOf, Str
from piwheels.protocols.base import (
    FAILURE,
    NO_DATA,
    PEER_MAX_ITEMS,
    Failure,
    NoData,
    Protocol,
    request_reply,
)

ASKING = Protocol(
    "asking",
    **request_reply(
        {"COUNT": (Str, Int), "LIST": (None, ListOf(Str)), "FORGET": (Int, None)},
        {"not-found", "malformed"},
    ),
)


def test_the_peer_receives_what_the_master_sends() -> None:
    chatty = Protocol("chatty", recv={"HELLO": Int}, send={"BYE": None}, max_items=10)
    peer = reversed(chatty)
    assert peer.name == "chatty (peer)"
    assert (peer.recv, peer.send) == (chatty.send, chatty.recv)
    assert peer.max_items == 10  # a peer is bounded both ways


def test_a_request_reply_protocol_answers_ok_or_error() -> None:
    assert set(ASKING.recv) == {"COUNT", "LIST", "FORGET"}
    assert set(ASKING.send) == {"OK", "ERROR"}
    assert isinstance(ASKING.send["OK"], AnyValue)  # its reply is checked as the request's
    assert ASKING.send["ERROR"] is FAILURE
    assert ASKING.errors == frozenset({"not-found", "malformed"})
    assert reversed(ASKING).replies is ASKING.replies


def test_an_ok_is_checked_as_the_requests_reply() -> None:
    assert ASKING.answer("COUNT", "OK", 3) == 3
    assert ASKING.answer("LIST", "OK", ("a", "b")) == ["a", "b"]
    assert ASKING.answer("FORGET", "OK", "anything") is None  # nothing declared: nothing read
    assert ASKING.answer("COUNT", "OK", "three") == Failure(
        "malformed", "malformed answer: COUNT reply: expected int, found 'three'"
    )


def test_an_error_is_passed_on_only_of_a_declared_kind() -> None:
    missing = Failure("not-found", "no such package")
    assert ASKING.answer("COUNT", "ERROR", missing) is missing
    for data in (Failure("refused", "no"), ("not-found", "no such package"), "oops"):
        assert ASKING.answer("COUNT", "ERROR", data) == Failure(
            "malformed", "malformed answer: COUNT: an ERROR of no declared kind"
        )
    assert ASKING.answer("COUNT", "MAYBE", 3) == Failure(
        "malformed", "malformed answer: COUNT: MAYBE is no reply"
    )


def test_only_a_declared_kind_of_error_is_sent() -> None:
    failure = ASKING.failure("not-found", "no such package")
    assert failure == Failure("not-found", "no such package")
    assert str(failure) == "no such package"  # the log reads the message alone
    with pytest.raises(ValueError, match="asking: no error kind 'refused'"):
        ASKING.failure("refused", "no")


def test_a_failure_travels_as_kind_and_message() -> None:
    assert FAILURE.check(["timeout", "no answer in 5s"], "ERROR") == Failure(
        "timeout", "no answer in 5s"
    )
    assert FAILURE.check(["failed", "x" * 2000], "ERROR").message.endswith("...")


def test_no_data_is_one_value() -> None:
    assert isinstance(NO_DATA, NoData)
    assert Protocol("quiet").max_items is None  # the master's own tasks trust each other
    assert PEER_MAX_ITEMS == 100_000
