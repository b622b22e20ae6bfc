"""A CurveZMQ server whose ZAP handler turns every key away: what a builder meets before the
master's operator trusts its key."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from piwheels.builder_keys import ClientKeys, KeyPair, serve_securely


@dataclass(frozen=True)
class RefusingServer:
    address: str
    keys: ClientKeys  # a client's: a key pair of its own and the server's public key


class _RefuseEveryKey:
    def callback(self, domain: str, key: bytes) -> bool:
        return False


@contextlib.contextmanager
def serve_refusing() -> Iterator[RefusingServer]:
    """A ROUTER on a loopback port, refusing every client, until the block ends."""
    # its own context: a ZAP handler answers for every server socket of the context it is on
    context: zmq.Context[Any] = zmq.Context()
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    try:
        authenticator.configure_curve_callback("*", _RefuseEveryKey())
        server = context.socket(zmq.ROUTER)
        server_pair = KeyPair(*zmq.curve_keypair())
        serve_securely(server, server_pair)
        port = server.bind_to_random_port("tcp://127.0.0.1")
        yield RefusingServer(
            f"tcp://127.0.0.1:{port}", ClientKeys(KeyPair(*zmq.curve_keypair()), server_pair.public)
        )
    finally:
        authenticator.stop()
        context.destroy(linger=0)
