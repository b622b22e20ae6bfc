"""Builder keys (#19): the CurveZMQ key pairs of the master and of each build slave, and the
master's list of the builders it trusts.

Keys are ZeroMQ's own certificate files (``zmq.auth``: ``NAME.key`` holds the public key,
``NAME.key_secret`` both), so the operator can read and copy them with ZeroMQ's tools too. A
key pair is made at a program's first start, in a directory only its user can enter, its
secret file readable by that user alone. A builder is trusted when its public key is in the
master's trusted directory (``piw-trust add``); revoking it moves the file to ``revoked/``, so
what was trusted when stays on record. Keys are named by their fingerprint, as ssh names
them: ``SHA256:`` and the unpadded base64 of the SHA-256 of the 32-byte key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from piwheels.private_dirs import OTHERS, private_directory_problem

log = logging.getLogger(__name__)

MASTER_KEY = "master"  # the master's key pair: KEY_DIR/master.key and master.key_secret
SLAVE_KEY = "slave"  # a slave's, in its own key directory
TRUSTED = "trusted"  # the master's trusted builders' public keys: KEY_DIR/trusted/
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"  # noqa: S105 (a file name, not a secret)
KEY_LENGTH = 40  # a 32-byte key in Z85
# A directory's mtime moves in the kernel's clock ticks (a few ms), so a change within the tick
# of the last read leaves it as it was: until it is this old, the directory is read every time.
RACY_NS = 1_000_000_000


class KeyFileError(ValueError):
    """A key file or key that cannot be used, and why."""


@dataclass(frozen=True)
class KeyPair:
    public: bytes  # Z85, as ZeroMQ's socket options take it
    secret: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


def serve_securely(zsock: zmq.Socket[Any], pair: KeyPair) -> None:
    """Make *zsock* (before it binds) a CurveZMQ server with the key pair *pair*: every
    connection is encrypted, and its client's public key is checked by the context's ZAP
    handler and carried by each message (its ``User-Id``)."""
    zsock.curve_server = True
    zsock.curve_secretkey = pair.secret
    zsock.curve_publickey = pair.public


@dataclass(frozen=True)
class ClientKeys:
    """What a builder (or piw-import) connects to the master's builder queues with: its own
    key pair, and the master's public key."""

    pair: KeyPair
    master: bytes

    def secure(self, zsock: zmq.Socket[Any]) -> None:
        """Make *zsock* (before it connects) a CurveZMQ client that talks only to a server
        proving it holds the master's secret key, and proves it holds this pair's."""
        zsock.curve_secretkey = self.pair.secret
        zsock.curve_publickey = self.pair.public
        zsock.curve_serverkey = self.master


def fingerprint(public: bytes) -> str:
    """The key's name for people: ``SHA256:`` and the base64 of the SHA-256 of the raw key."""
    digest = hashlib.sha256(z85.decode(public)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _private_directory(directory: Path) -> None:
    problem = private_directory_problem(directory)
    if problem is not None:
        raise KeyFileError(f"{directory} {problem}: keys need a directory only you can enter")


def key_pair(directory: Path, name: str, *, make: bool = True) -> tuple[KeyPair, bool]:
    """The key pair *name* in *directory*, made there if it has none (and *make*); and whether
    it was made.

    The directory is made (or must be) this user's alone, so the secret file, which ZeroMQ
    writes under the umask, is never readable by anyone else, even before it is chmod 600.
    """
    secret_file = directory / f"{name}{SECRET_SUFFIX}"
    if not make and not secret_file.exists():
        raise KeyFileError(f"no key pair {name!r} in {directory}")
    _private_directory(directory)
    made = not secret_file.exists()
    if made:
        zmq.auth.create_certificates(directory, name)
    secret_file.chmod(0o600)
    if secret_file.stat().st_mode & OTHERS:
        raise KeyFileError(f"{secret_file} is readable by other users")
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise KeyFileError(f"{secret_file} holds no secret key")
    return KeyPair(public, secret), made


def public_key(text_or_file: str) -> bytes:
    """A public key given as its Z85 text or as a ZeroMQ certificate file holding it."""
    candidate = text_or_file.strip()
    if len(candidate) == KEY_LENGTH and not Path(candidate).exists():
        key = candidate.encode("ascii", "replace")
    else:
        try:
            key, _ = zmq.auth.load_certificate(candidate)
        except (OSError, ValueError) as exc:
            why = f"{text_or_file!r} is neither a public key nor a key file: {exc}"
            raise KeyFileError(why) from None
    try:
        raw = z85.decode(key)
    except (ValueError, KeyError):  # KeyError: a character Z85 does not have
        raise KeyFileError(f"{text_or_file!r} is not a CurveZMQ public key") from None
    if len(raw) != 32:
        raise KeyFileError(f"{text_or_file!r} is not a CurveZMQ public key (not 32 bytes)")
    return key


@dataclass(frozen=True)
class TrustedKey:
    fingerprint: str
    public: bytes
    label: str
    added: datetime


class TrustedKeys:
    """The master's trusted builders: one certificate file per key in *directory*.

    :meth:`is_trusted` reads the directory again whenever it changed (its mtime, and always
    while that is recent: see RACY_NS), so a key added or revoked by ``piw-trust`` counts at
    the next message, without a restart.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.revoked_directory = directory / "revoked"
        self._seen: int | None = None
        self._keys: dict[bytes, TrustedKey] = {}
        self._lock = threading.Lock()  # the ZAP handler's thread and the tasks' ask at once

    @staticmethod
    def _file_name(public: bytes) -> str:
        # a fingerprint's base64 may hold "/": the file is named by the key's hex digest
        return hashlib.sha256(z85.decode(public)).hexdigest()[:32] + PUBLIC_SUFFIX

    def add(self, public: bytes, label: str) -> TrustedKey:
        _private_directory(self.directory)
        label = " ".join(label.split())[:200]  # one line, as the certificate's metadata
        path = self.directory / self._file_name(public)
        text = (
            "#   piwheels: a trusted builder's public key (piw-trust add)\n"
            "metadata\n"
            f'    label = "{label.replace(chr(34), chr(39))}"\n'
            f'    added = "{datetime.now(UTC).isoformat()}"\n'
            "curve\n"
            f'    public-key = "{public.decode("ascii")}"\n'
        )
        temp = path.with_suffix(".tmp")
        temp.write_text(text)
        temp.replace(path)
        (self.revoked_directory / path.name).unlink(missing_ok=True)
        return self._read(path)

    def revoke(self, name: str) -> TrustedKey:
        """Revoke the key whose fingerprint (or public key) is *name*."""
        for key in self.list():
            if name in (key.fingerprint, key.public.decode("ascii")):
                self.revoked_directory.mkdir(mode=0o700, exist_ok=True)
                path = self.directory / self._file_name(key.public)
                path.replace(self.revoked_directory / path.name)
                return key
        raise KeyFileError(f"no trusted key {name}")

    def list(self) -> list[TrustedKey]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.glob(f"*{PUBLIC_SUFFIX}")):
            try:
                found.append(self._read(path))
            except (OSError, ValueError) as exc:  # revoked meanwhile, or not a key file
                if path.exists():
                    log.warning("%s is not a trusted key, skipped: %s", path, exc)
        return sorted(found, key=lambda key: (key.added, key.fingerprint))

    def _read(self, path: Path) -> TrustedKey:
        public, _ = zmq.auth.load_certificate(path)
        label, added = "", datetime.fromtimestamp(path.stat().st_mtime, UTC)
        for line in path.read_text().splitlines():
            key, _, value = line.strip().partition(" = ")
            value = value.strip('"')
            if key == "label":
                label = value
            elif key == "added":
                with contextlib.suppress(ValueError):
                    added = datetime.fromisoformat(value)
        return TrustedKey(fingerprint(public), public, label, added)

    def is_trusted(self, public: bytes) -> TrustedKey | None:
        try:
            seen = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            seen = -1
        with self._lock:
            if seen != self._seen or time.time_ns() - seen < RACY_NS:
                self._keys = {key.public: key for key in self.list()}
                self._seen = seen
            return self._keys.get(public)
