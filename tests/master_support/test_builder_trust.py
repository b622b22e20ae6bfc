"""The master's builder keys and its ZAP handler, over real CurveZMQ sockets (#19)."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils import z85

from piwheels.builder_keys import (
    MASTER_KEY,
    SLAVE_KEY,
    TRUSTED,
    ClientKeys,
    KeyFileError,
    TrustedKeys,
    key_pair,
    serve_securely,
)
from piwheels.master_support import builder_trust
from piwheels.master_support.builder_trust import (
    BuilderAuthenticator,
    BuilderTrust,
    describe_key,
)
from piwheels.transport import _peer_key


@pytest.fixture
def trust(tmp_path: Path) -> BuilderTrust:
    return BuilderTrust(tmp_path / "keys", make=True)


def builder(tmp_path: Path, trust: BuilderTrust, name: str, *, trusted: bool) -> ClientKeys:
    pair, _ = key_pair(tmp_path / name, SLAVE_KEY)
    if trusted:
        trust.trusted.add(pair.public, name)
    return ClientKeys(pair, trust.pair.public)


def test_the_master_makes_its_key_pair_once_and_its_tasks_only_read_it(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no key pair 'master'"):
        BuilderTrust(tmp_path / "keys")
    assert not (tmp_path / "keys").exists()  # nothing made by a reader
    first = BuilderTrust(tmp_path / "keys", make=True)
    assert first.made
    again = BuilderTrust(tmp_path / "keys")
    assert not again.made and again.pair == first.pair


def test_only_trusted_keys_and_the_masters_own_are_admitted(
    tmp_path: Path, trust: BuilderTrust
) -> None:
    known = builder(tmp_path, trust, "known", trusted=True)
    stranger = builder(tmp_path, trust, "stranger", trusted=False)
    assert trust.admits(known.pair.public.decode())
    assert trust.admits(trust.public_key)  # piw-import, run as the master's user
    assert not trust.admits(stranger.pair.public.decode())
    assert not trust.admits("")  # a plain connection, or no ZAP handler behind the queue
    assert not trust.admits("not a key at all")
    trust.trusted.revoke(known.pair.fingerprint)
    assert not trust.admits(known.pair.public.decode())


def test_a_refused_key_is_logged_once_until_it_was_trusted_again(
    trust: BuilderTrust, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert trust.first_refusal("a")
    assert not trust.first_refusal("a")
    trust.forgive("a")
    assert trust.first_refusal("a")
    # a flood of made-up keys is not remembered without bound: one in so many is logged
    monkeypatch.setattr(builder_trust, "MAX_REFUSALS_REMEMBERED", 3)
    fresh = [trust.first_refusal(str(n)) for n in range(10)]
    assert fresh[:2] == [True, True] and fresh.count(True) < 6


def test_describe_key_never_fails() -> None:
    pair, _ = key_pair_in_memory()
    assert describe_key(pair).startswith("SHA256:")
    assert describe_key("short") == "(not a CurveZMQ key)"
    assert describe_key("é" * 40) == "(not a CurveZMQ key)"


def key_pair_in_memory() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


@pytest.fixture
def server(trust: BuilderTrust) -> Iterator[tuple[zmq.Socket[Any], str]]:
    """A ROUTER served as the master's builder queues are, behind its ZAP handler."""
    context: zmq.Context[Any] = zmq.Context()
    authenticator = BuilderAuthenticator(context, trust)
    authenticator.start()
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    serve_securely(sock, trust.pair)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, f"tcp://127.0.0.1:{port}"
    sock.close()
    authenticator.stop()
    context.term()


def say(address: str, keys: ClientKeys | None, context: zmq.Context[Any]) -> zmq.Socket[Any]:
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    if keys is not None:
        keys.secure(sock)
    sock.connect(address)
    sock.send(b"hello")
    return sock


def test_the_zap_handler_lets_in_trusted_keys_only_and_logs_each_stranger_once(
    tmp_path: Path,
    trust: BuilderTrust,
    server: tuple[zmq.Socket[Any], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock, address = server
    known = builder(tmp_path, trust, "known", trusted=True)
    stranger = builder(tmp_path, trust, "stranger", trusted=False)
    context: zmq.Context[Any] = zmq.Context()
    caplog.set_level(logging.WARNING, "piwheels")
    try:
        peers = [say(address, stranger, context) for _ in range(3)]
        peers.append(say(address, None, context))  # no CurveZMQ at all
        assert not sock.poll(1000), "a stranger's message got through"
        peers.append(say(address, known, context))
        assert sock.poll(5000)
        frames = sock.recv_multipart(copy=False)
        assert frames[-1].bytes == b"hello"
        assert _peer_key(frames[-1]) == known.pair.public.decode()
        for peer in peers:
            peer.close()
    finally:
        context.term()
    refusals = [r.getMessage() for r in caplog.records if "refused a builder" in r.getMessage()]
    expected = (
        f"refused a builder from 127.0.0.1: its key {stranger.pair.fingerprint} is not trusted "
        f"(to trust it: piw-trust add {shlex.quote(stranger.pair.public.decode())})"
    )
    assert refusals == [expected]


def test_a_key_trusted_after_a_refusal_is_let_in_without_a_restart(
    tmp_path: Path, trust: BuilderTrust, server: tuple[zmq.Socket[Any], str]
) -> None:
    sock, address = server
    later = builder(tmp_path, trust, "later", trusted=False)
    context: zmq.Context[Any] = zmq.Context()
    try:
        refused = say(address, later, context)
        assert not sock.poll(500)
        refused.close()
        TrustedKeys(trust.key_dir / TRUSTED).add(later.pair.public, "later")  # piw-trust add
        admitted = say(address, later, context)
        assert sock.poll(5000)
        admitted.close()
    finally:
        context.term()


def test_a_queue_with_no_zap_handler_admits_no_key(tmp_path: Path, trust: BuilderTrust) -> None:
    """libzmq lets every key in when no ZAP handler answers: the messages then carry no key,
    and the tasks' check (which refuses an empty one) keeps them out all the same."""
    context: zmq.Context[Any] = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.linger = 0
    serve_securely(sock, trust.pair)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    known = builder(tmp_path, trust, "known", trusted=True)
    try:
        peer = say(f"tcp://127.0.0.1:{port}", known, context)
        assert sock.poll(5000)
        frames = sock.recv_multipart(copy=False)
        assert _peer_key(frames[-1]) == ""
        assert not trust.admits(_peer_key(frames[-1]))
        peer.close()
    finally:
        sock.close()
        context.term()


def test_the_masters_key_files_are_where_the_operator_is_told(trust: BuilderTrust) -> None:
    assert (trust.key_dir / f"{MASTER_KEY}.key").read_text().count(trust.public_key) == 1
    assert (trust.key_dir / f"{MASTER_KEY}.key_secret").stat().st_mode & 0o077 == 0


def test_the_zap_handler_answers_each_kind_of_request(tmp_path: Path, trust: BuilderTrust) -> None:
    known = builder(tmp_path, trust, "known", trusted=True)
    stranger = builder(tmp_path, trust, "stranger", trusted=False)
    authenticator = BuilderAuthenticator(zmq.Context.instance(), trust)

    def ask(*frames: bytes) -> tuple[bytes, bytes]:
        reply = authenticator.answer([b"1.0", b"7", b"", b"127.0.0.1", b"", *frames])
        assert reply[:2] == [b"1.0", b"7"] and len(reply) == 6
        return reply[2], reply[4]

    assert ask(b"CURVE", z85.decode(known.pair.public)) == (b"200", known.pair.public)
    assert ask(b"CURVE", z85.decode(stranger.pair.public)) == (b"400", b"")
    assert ask(b"CURVE", b"not a key")[0] == b"400"
    assert ask(b"PLAIN", b"user", b"password")[0] == b"400"
    assert ask(b"NULL") == (b"200", b"anonymous")  # a plain queue, opened by the operator
    assert authenticator.answer([b"2.0", b"7", b"", b"", b"", b"NULL"])[2] == b"400"
    assert authenticator.answer([b"1.0"])[2] == b"400"


def test_the_zap_handler_outlives_its_own_failure(
    trust: BuilderTrust,
    server: tuple[zmq.Socket[Any], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock, address = server
    known = builder(tmp_path, trust, "known", trusted=True)
    calls = []

    def flaky(self: BuilderAuthenticator, request: list[bytes]) -> list[bytes]:
        calls.append(request)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return answer(self, request)

    answer = BuilderAuthenticator.answer
    monkeypatch.setattr(BuilderAuthenticator, "answer", flaky)
    context: zmq.Context[Any] = zmq.Context()
    try:
        first = say(address, known, context)  # refused: its answer failed
        assert not sock.poll(1000)
        second = say(address, known, context)
        assert sock.poll(5000), "the ZAP handler stopped answering"
        first.close()
        second.close()
    finally:
        context.destroy(linger=0)
    assert "cannot answer a ZAP request" in caplog.text
