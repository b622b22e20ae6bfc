"""A CurveZMQ server whose ZAP handler turns every key away: what a builder meets before the
master's operator trusts its key."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from piwheels.builder_keys import ClientKeys, KeyPair, serve_securely
from piwheels.master_support.builder_trust import BuilderAuthenticator, BuilderTrust


@dataclass(frozen=True)
class RefusingServer:
    address: str
    keys: ClientKeys  # a client's: a key pair of its own and the server's public key


@contextlib.contextmanager
def serve_refusing() -> Iterator[RefusingServer]:
    """A ROUTER on a loopback port, as the master's builder queues are, trusting no builder,
    until the block ends."""
    # its own context: a ZAP handler answers for every server socket of the context it is on
    context: zmq.Context[Any] = zmq.Context()
    with tempfile.TemporaryDirectory(prefix="refusing-") as keys:
        trust = BuilderTrust(Path(keys), make=True)  # the master's pair, and no one else's
        authenticator = BuilderAuthenticator(context, trust)
        authenticator.start()
        try:
            server = context.socket(zmq.ROUTER)
            serve_securely(server, trust.pair)
            port = server.bind_to_random_port("tcp://127.0.0.1")
            client = ClientKeys(KeyPair(*zmq.curve_keypair()), trust.pair.public)
            yield RefusingServer(f"tcp://127.0.0.1:{port}", client)
        finally:
            authenticator.stop()
            context.destroy(linger=0)
