"""Signed provenance for every published wheel: who built it, from what, and how it was checked.

Beside each wheel ``simple/<project>/<wheel>`` the master publishes ``<wheel>.provenance.json``:
an in-toto Statement (v1) whose predicate is SLSA Provenance (v1), in a DSSE envelope signed
with the master's Ed25519 key. The public key is published at the output's root,
``OUTPUT/piwheels-provenance.pem``; ``piw-verify`` checks a wheel against both. (A key read from
the site that serves the wheel shows only that the two agree; a user who wants to trust the farm
keeps a copy of its key, known by its :func:`key_id`.)

Our choices where the formats leave them open:

* ``buildDefinition.buildType`` is ``urn:piwheels:build:v1``: a piwheels build of one sdist for
  one ABI, its parameters ``package``, ``version`` and ``abi`` (external) and ``platform_tag``
  (internal). A URN, not a farm's URL, so that statements from every farm share one type.
* ``runDetails.builder.id`` names the build slave by its CurveZMQ key's fingerprint,
  ``urn:piwheels:builder:SHA256:...``, or ``urn:piwheels:builder:unauthenticated:<label>`` (the
  label percent-encoded) for a builder without a key; ``builder.version`` holds its ``os`` and
  ``python``, and ``builder.piwheels_label`` the operator's label.
* ``runDetails.metadata.piwheels_crossCheck`` says whether other builders made the same bytes
  (SLSA's extension fields are named ``<vendor>_<field>``); ``invocationId`` is the build's id.
* ``runDetails.byproducts`` holds the build log: its SHA-256 and its URL on the farm.

A statement's JSON is canonical (keys sorted, no spaces, ASCII), so the same facts make the same
bytes, and Ed25519 signatures are deterministic, so they make the same envelope too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from piwheels.private_dirs import OTHERS, private_directory_problem
from piwheels.web.layout import log_path

PUBLIC_KEY_FILE = "piwheels-provenance.pem"  # at the output's root: the site's /piwheels-...
SUFFIX = ".provenance.json"  # the statement of simple/<project>/<wheel> is <wheel> + SUFFIX
SIGNING_KEY_FILE = "provenance.key"  # in the master's key directory

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "urn:piwheels:build:v1"
BUILDER_URN = "urn:piwheels:builder:"
UNAUTHENTICATED = BUILDER_URN + "unauthenticated:"


class ProvenanceKeyError(ValueError):
    """A signing or public key that cannot be used, and why."""


class ProvenanceError(Exception):
    """Why a wheel does not verify against its statement, in words for the wheel's user."""


@dataclass(frozen=True)
class BuildFacts:
    """What the master knows of one published wheel's build."""

    filename: str
    sha256: str  # hex, as all digests here
    size: int
    package: str
    version: str
    abi_tag: str
    sdist_url: str  # "" when unknown
    sdist_sha256: str  # "" when unknown
    builder_key: str  # the builder's key fingerprint (SHA256:...), "" for one without a key
    builder_label: str
    builder_os: str  # e.g. "Debian GNU/Linux 12"
    builder_python: str  # e.g. "cp311"
    platform_tag: str
    build_id: int
    built_at: datetime  # when the build finished, time-zone aware
    duration: timedelta
    log_sha256: str  # of the log's text, as served (decompressed) at its URL on the farm
    cross_check: str  # e.g. "not checked", "built identically by 2 builders"
    farm_url: str  # the farm's public URL, e.g. "http://127.0.0.1:8080"

    def __post_init__(self) -> None:
        if self.built_at.tzinfo is None:
            raise ValueError(f"built_at {self.built_at!r} has no time zone")
        if self.duration < timedelta(0):
            raise ValueError(f"duration {self.duration!r} is negative")
        if not _is_sha256(self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} is not a hex SHA-256")
        for name in ("sdist_sha256", "log_sha256"):
            value = getattr(self, name)
            if value and not _is_sha256(value):
                raise ValueError(f"{name} {value!r} is not a hex SHA-256")


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in string.hexdigits for c in text)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def builder_id(key: str, label: str) -> str:
    """The URI naming a builder: by its key, or by its label when it has none."""
    return BUILDER_URN + key if key else UNAUTHENTICATED + quote(label, safe="")


def statement(facts: BuildFacts) -> dict[str, Any]:
    """The in-toto statement, with SLSA v1 provenance, of the wheel *facts* describe."""
    sdist: dict[str, Any] = {}
    if facts.sdist_url:
        sdist["uri"] = facts.sdist_url
    if facts.sdist_sha256:
        sdist["digest"] = {"sha256": facts.sdist_sha256.lower()}
    log: dict[str, Any] = {
        "name": "build log",
        "uri": f"{facts.farm_url.rstrip('/')}/{log_path(facts.build_id)}",
    }
    if facts.log_sha256:
        log["digest"] = {"sha256": facts.log_sha256.lower()}
    versions = {"os": facts.builder_os, "python": facts.builder_python}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": facts.filename,
                "digest": {"sha256": facts.sha256.lower()},
                "annotations": {"size": facts.size},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "package": facts.package,
                    "version": facts.version,
                    "abi": facts.abi_tag,
                },
                "internalParameters": {"platform_tag": facts.platform_tag},
                "resolvedDependencies": [sdist] if sdist else [],
            },
            "runDetails": {
                "builder": {
                    "id": builder_id(facts.builder_key, facts.builder_label),
                    "version": {name: value for name, value in versions.items() if value},
                    "piwheels_label": facts.builder_label,
                },
                "metadata": {
                    "invocationId": str(facts.build_id),
                    "startedOn": _rfc3339(facts.built_at - facts.duration),
                    "finishedOn": _rfc3339(facts.built_at),
                    "piwheels_crossCheck": facts.cross_check,
                },
                "byproducts": [log],
            },
        },
    }


def canonical_json(document: dict[str, Any]) -> bytes:
    """*document* as the same bytes every time: keys sorted, no spaces, ASCII only."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("ascii")


def signing_key(key_dir: Path, *, make: bool = False) -> Ed25519PrivateKey:
    """The master's signing key, from *key_dir*, made there first if it has none (and *make*).

    The directory must be this user's alone (it is made so if missing), as for the builder keys.
    """
    path = key_dir / SIGNING_KEY_FILE
    if not make and not path.exists():
        raise ProvenanceKeyError(f"no provenance signing key {SIGNING_KEY_FILE} in {key_dir}")
    problem = private_directory_problem(key_dir)
    if problem is not None:
        raise ProvenanceKeyError(
            f"{key_dir} {problem}: the provenance signing key needs a directory only you can enter"
        )
    if not path.exists():
        _make_key(path)
    path.chmod(0o600)
    if path.stat().st_mode & OTHERS:
        raise ProvenanceKeyError(f"{path} is readable by other users")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ProvenanceKeyError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ProvenanceKeyError(f"{path} is not a PEM private key without a password") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProvenanceKeyError(f"{path} is not an Ed25519 key")
    return key


def _make_key(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        # A link, not a rename, never replaces a key another process made meanwhile: the
        # statements signed with that one would no longer verify.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """*key* as the PEM file the master publishes (SubjectPublicKeyInfo)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """The Ed25519 public key in *pem*, as :func:`public_key_pem` writes it."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ProvenanceKeyError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProvenanceKeyError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """The key's name for people, as ssh gives it: ``SHA256:`` and the unpadded base64 of the
    SHA-256 of the 32-byte key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed, the type bound to the payload.

    >>> pae("http://example.com/HelloWorld", b"hello world")
    b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign(statement: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """A DSSE envelope of *statement*, signed with *key*: the bytes of the published file."""
    payload = canonical_json(statement)
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode("ascii"),
            }
        ],
    }
    return canonical_json(envelope) + b"\n"


def _b64decode(text: str) -> bytes:
    # DSSE lets a signer use standard or URL-safe base64, with or without padding.
    text = text.translate(str.maketrans("-_", "+/")).rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _envelope(envelope: bytes) -> tuple[str, bytes, list[dict[str, Any]]]:
    not_envelope = "the provenance file is not a signed statement (a DSSE envelope)"
    try:
        document = json.loads(envelope)
    except (ValueError, RecursionError):
        raise ProvenanceError(f"{not_envelope}: it is not JSON") from None
    if not isinstance(document, dict):
        raise ProvenanceError(f"{not_envelope}: it is not a JSON object")
    payload_type, payload, signatures = (
        document.get(name) for name in ("payloadType", "payload", "signatures")
    )
    if not isinstance(payload_type, str) or not isinstance(payload, str):
        raise ProvenanceError(f"{not_envelope}: it has no payloadType and payload")
    if not isinstance(signatures, list) or not all(isinstance(s, dict) for s in signatures):
        raise ProvenanceError(f"{not_envelope}: it has no list of signatures")
    try:
        body = _b64decode(payload)
    except ValueError:
        raise ProvenanceError(f"{not_envelope}: its payload is not base64") from None
    return payload_type, body, signatures


def _signed_by(
    key: Ed25519PublicKey, payload_type: str, body: bytes, signatures: list[Any]
) -> None:
    expected = key_id(key)
    # keyid is only a hint in DSSE: one left out or empty may still be by this key
    candidates = [s for s in signatures if s.get("keyid") in (expected, "", None)]
    if not candidates:
        others = ", ".join(sorted({str(s.get("keyid")) for s in signatures})) or "no key"
        raise ProvenanceError(
            f"the statement is not signed by the key {expected} (but by {others})"
        )
    message = pae(payload_type, body)
    for signature in candidates:
        sig = signature.get("sig")
        if not isinstance(sig, str):
            continue
        with contextlib.suppress(ValueError, InvalidSignature):
            key.verify(_b64decode(sig), message)
            return
    raise ProvenanceError(
        f"the signature does not match: the statement was changed after it was signed, "
        f"or signed by another key than {expected}"
    )


def verify(
    envelope: bytes, wheel_name: str, wheel_sha256: str, key: Ed25519PublicKey
) -> dict[str, Any]:
    """The statement in *envelope*, once it is shown to be signed with *key* and to name the
    wheel *wheel_name* with the SHA-256 *wheel_sha256*; else ProvenanceError saying why."""
    payload_type, body, signatures = _envelope(envelope)
    if payload_type != PAYLOAD_TYPE:
        raise ProvenanceError(
            f"the envelope holds {payload_type!r}, not an in-toto statement ({PAYLOAD_TYPE})"
        )
    _signed_by(key, payload_type, body, signatures)
    # Signed by the key: from here on the payload is the master's word.
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ProvenanceError("the signed statement is not JSON") from None
    if not isinstance(document, dict) or document.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"the signed payload is not an in-toto statement ({STATEMENT_TYPE})")
    if document.get("predicateType") != PREDICATE_TYPE or not isinstance(
        document.get("predicate"), dict
    ):
        raise ProvenanceError(
            f"the statement is not SLSA provenance ({PREDICATE_TYPE}) "
            f"but {document.get('predicateType')!r}"
        )
    subject = document.get("subject")
    subjects = [s for s in subject if isinstance(s, dict)] if isinstance(subject, list) else []
    named = [s for s in subjects if s.get("name") == wheel_name]
    if not named:
        names = ", ".join(str(s.get("name")) for s in subjects) or "nothing"
        raise ProvenanceError(f"the statement is about {names}, not about {wheel_name}")
    digests = {str(_at(s, "digest", "sha256")).lower() for s in named}
    if wheel_sha256.lower() not in digests:
        raise ProvenanceError(
            f"the wheel's bytes differ from the ones the farm built "
            f"(its sha256 is {wheel_sha256.lower()}, the statement's {', '.join(sorted(digests))})"
        )
    return document


def _at(document: Any, *path: str) -> Any:
    """The value at *path* in nested objects, or None if any step is missing."""
    for name in path:
        document = document.get(name) if isinstance(document, dict) else None
    return document


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def summary(statement: dict[str, Any]) -> list[str]:
    """What a verified statement says, a line a fact, for people."""
    definition = _at(statement, "predicate", "buildDefinition")
    run = _at(statement, "predicate", "runDetails")
    parameters = _at(definition, "externalParameters")
    builder = _at(run, "builder")
    key = str(_at(builder, "id")).removeprefix(BUILDER_URN)
    if key.startswith("unauthenticated:"):
        key = "no key"
    about = [f"{_at(builder, 'piwheels_label') or 'unlabelled'} ({key})"]
    if _at(builder, "version", "os"):
        about.append(_at(builder, "version", "os"))
    if _at(builder, "version", "python"):
        about.append(f"Python {_at(builder, 'version', 'python')}")
    sdist = _first(_at(definition, "resolvedDependencies"))
    sdist_sha256 = _at(sdist, "digest", "sha256") or "not recorded"
    log = _first(_at(run, "byproducts"))
    log_sha256 = _at(log, "digest", "sha256") or "not recorded"
    platform = _at(definition, "internalParameters", "platform_tag")
    started, finished, build_id = (
        _at(run, "metadata", name) for name in ("startedOn", "finishedOn", "invocationId")
    )
    cross_check = _at(run, "metadata", "piwheels_crossCheck") or "not recorded"
    return [
        f"package:     {_at(parameters, 'package')} {_at(parameters, 'version')}",
        f"builder:     {', '.join(about)}",
        f"sdist:       {_at(sdist, 'uri') or 'not recorded'} sha256:{sdist_sha256}",
        f"ABI:         {_at(parameters, 'abi')} (platform {platform})",
        f"built at:    {finished} (started {started}, build {build_id})",
        f"build log:   {_at(log, 'uri')} sha256:{log_sha256}",
        f"cross-check: {cross_check}",
    ]
