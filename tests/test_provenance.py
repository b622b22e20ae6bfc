"""Signed provenance: the master's signing key kept private, the statement it signs for each
wheel, and every way a wheel, its statement or the key can fail to agree, each with its reason."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from piwheels.provenance import (
    PAYLOAD_TYPE,
    SIGNING_KEY_FILE,
    BuildFacts,
    ProvenanceError,
    ProvenanceKeyError,
    canonical_json,
    key_id,
    load_public_key,
    pae,
    public_key_pem,
    sign,
    signing_key,
    statement,
    summary,
    verify,
)

WHEEL = "foo-1.0-cp311-cp311-linux_armv7l.whl"
WHEEL_BYTES = b"PK\x05\x06" + bytes(18)  # an empty zip: the bytes only need a digest
WHEEL_SHA256 = hashlib.sha256(WHEEL_BYTES).hexdigest()
SDIST_SHA256 = hashlib.sha256(b"the sdist").hexdigest()
LOG_SHA256 = hashlib.sha256(b"the build log").hexdigest()
BUILDER_KEY = "SHA256:" + "A" * 43


def make_facts(**changes: Any) -> BuildFacts:
    facts = BuildFacts(
        filename=WHEEL,
        sha256=WHEEL_SHA256,
        size=len(WHEEL_BYTES),
        package="foo",
        version="1.0",
        abi_tag="cp311",
        sdist_url="https://files.pythonhosted.org/packages/ab/cd/foo-1.0.tar.gz",
        sdist_sha256=SDIST_SHA256,
        builder_key=BUILDER_KEY,
        builder_label="pi4 in the attic",
        builder_os="Debian GNU/Linux 12",
        builder_python="cp311",
        platform_tag="linux_armv7l",
        build_id=1234567,
        built_at=datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC),
        duration=timedelta(minutes=2, seconds=5),
        log_sha256=LOG_SHA256,
        cross_check="built identically by 2 builders",
        farm_url="http://127.0.0.1:8080",
    )
    return dataclasses.replace(facts, **changes)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def reencoded(envelope: bytes, change: Any) -> bytes:
    """*envelope* with its statement decoded, changed by *change*, and encoded again, its
    signature kept as it was."""
    document = json.loads(envelope)
    payload = json.loads(base64.b64decode(document["payload"]))
    change(payload)
    document["payload"] = base64.b64encode(canonical_json(payload)).decode()
    return json.dumps(document).encode()


# the master's key


def test_the_signing_key_is_made_once_private_then_kept(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = signing_key(keys, make=True)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / SIGNING_KEY_FILE).stat().st_mode) == 0o600
    assert (keys / SIGNING_KEY_FILE).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [path.name for path in keys.iterdir()] == [SIGNING_KEY_FILE]  # no temp file left
    for make in (True, False):
        again = signing_key(keys, make=make)
        assert key_id(again.public_key()) == key_id(made.public_key())


def test_without_make_a_missing_key_is_refused_and_nothing_made(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceKeyError, match=r"no provenance signing key provenance\.key in"):
        signing_key(tmp_path / "keys")
    assert not (tmp_path / "keys").exists()


def test_a_key_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o755)
    keys.chmod(0o755)
    with pytest.raises(ProvenanceKeyError, match="is open to other users"):
        signing_key(keys, make=True)
    assert not (keys / SIGNING_KEY_FILE).exists()


def test_a_key_made_readable_by_others_is_made_private_again(tmp_path: Path) -> None:
    signing_key(tmp_path / "keys", make=True)
    (tmp_path / "keys" / SIGNING_KEY_FILE).chmod(0o644)
    signing_key(tmp_path / "keys")
    assert stat.S_IMODE((tmp_path / "keys" / SIGNING_KEY_FILE).stat().st_mode) == 0o600


def test_a_key_file_that_is_not_an_ed25519_key_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / SIGNING_KEY_FILE).write_bytes(b"not a key\n")
    with pytest.raises(ProvenanceKeyError, match="is not a PEM private key"):
        signing_key(keys)
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (keys / SIGNING_KEY_FILE).write_bytes(ec_key)
    with pytest.raises(ProvenanceKeyError, match="is not an Ed25519 key"):
        signing_key(keys)


def test_the_public_key_is_published_as_pem_and_named_by_its_digest(
    key: Ed25519PrivateKey,
) -> None:
    pem = public_key_pem(key.public_key())
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key_id(load_public_key(pem)) == key_id(key.public_key())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expected = base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    assert key_id(key.public_key()) == f"SHA256:{expected}"
    assert len(key_id(key.public_key())) == len("SHA256:") + 43


def test_a_public_key_that_is_not_one_is_refused() -> None:
    with pytest.raises(ProvenanceKeyError, match="not a PEM public key"):
        load_public_key(b"<html>404 Not Found</html>")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ProvenanceKeyError, match="not an Ed25519 public key"):
        load_public_key(pem)


# the statement


def test_the_statement_names_the_wheel_its_sdist_builder_log_and_times() -> None:
    document = statement(make_facts())
    assert document["_type"] == "https://in-toto.io/Statement/v1"
    assert document["subject"] == [
        {"name": WHEEL, "digest": {"sha256": WHEEL_SHA256}, "annotations": {"size": 22}}
    ]
    assert document["predicateType"] == "https://slsa.dev/provenance/v1"
    definition = document["predicate"]["buildDefinition"]
    assert definition == {
        "buildType": "urn:piwheels:build:v1",
        "externalParameters": {"package": "foo", "version": "1.0", "abi": "cp311"},
        "internalParameters": {"platform_tag": "linux_armv7l"},
        "resolvedDependencies": [
            {
                "uri": "https://files.pythonhosted.org/packages/ab/cd/foo-1.0.tar.gz",
                "digest": {"sha256": SDIST_SHA256},
            }
        ],
    }
    run = document["predicate"]["runDetails"]
    assert run["builder"] == {
        "id": f"urn:piwheels:builder:{BUILDER_KEY}",
        "version": {"os": "Debian GNU/Linux 12", "python": "cp311"},
        "piwheels_label": "pi4 in the attic",
    }
    assert run["metadata"] == {
        "invocationId": "1234567",
        "startedOn": "2026-11-22T09:58:25Z",
        "finishedOn": "2026-11-22T10:00:30Z",
        "piwheels_crossCheck": "built identically by 2 builders",
    }
    assert run["byproducts"] == [
        {
            "name": "build log",
            "uri": "http://127.0.0.1:8080/logs/0001/0234/1234567.txt.gz",
            "digest": {"sha256": LOG_SHA256},
        }
    ]


def test_times_in_other_zones_are_written_in_utc() -> None:
    paris = datetime(2026, 11, 22, 11, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert statement(make_facts(built_at=paris)) == statement(make_facts())


def test_what_is_unknown_is_left_out() -> None:
    document = statement(
        make_facts(sdist_url="", sdist_sha256="", builder_key="", builder_os="", log_sha256="")
    )
    definition = document["predicate"]["buildDefinition"]
    run = document["predicate"]["runDetails"]
    assert definition["resolvedDependencies"] == []
    assert run["builder"]["id"] == "urn:piwheels:builder:unauthenticated:pi4%20in%20the%20attic"
    assert run["builder"]["version"] == {"python": "cp311"}
    assert "digest" not in run["byproducts"][0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"built_at": datetime(2026, 11, 22)}, "has no time zone"),
        ({"duration": timedelta(seconds=-1)}, "is negative"),
        ({"sha256": "abc"}, "sha256 'abc' is not a hex SHA-256"),
        ({"sdist_sha256": "z" * 64}, "sdist_sha256 'zzz"),
    ],
)
def test_facts_that_cannot_be_stated_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_facts(**changes)


def test_the_same_facts_make_the_same_bytes(key: Ed25519PrivateKey) -> None:
    first, second = statement(make_facts()), statement(make_facts())
    assert canonical_json(first) == canonical_json(second)
    assert canonical_json(first) == canonical_json(dict(reversed(first.items())))
    assert canonical_json(first).startswith(b'{"_type":"https://in-toto.io/Statement/v1","pre')
    assert sign(first, key) == sign(second, key)
    assert sign(first, key) != sign(statement(make_facts(cross_check="not checked")), key)


def test_pae_is_dsses() -> None:
    # the example in the DSSE protocol's specification
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_the_envelope_is_dsse_signed_over_the_pae(key: Ed25519PrivateKey) -> None:
    document = statement(make_facts())
    envelope = json.loads(sign(document, key))
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    assert payload == canonical_json(document)
    [signature] = envelope["signatures"]
    assert signature["keyid"] == key_id(key.public_key())
    signed = b"DSSEv1 28 application/vnd.in-toto+json %d %b" % (len(payload), payload)
    key.public_key().verify(base64.b64decode(signature["sig"]), signed)  # raises if not


# verifying


def test_a_signed_statement_verifies_and_says_what_it_states(key: Ed25519PrivateKey) -> None:
    document = statement(make_facts())
    verified = verify(sign(document, key), WHEEL, WHEEL_SHA256, key.public_key())
    assert verified == document
    assert verify(sign(document, key), WHEEL, WHEEL_SHA256.upper(), key.public_key()) == document
    assert summary(verified) == [
        "package:     foo 1.0",
        f"builder:     pi4 in the attic ({BUILDER_KEY}), Debian GNU/Linux 12, Python cp311",
        f"sdist:       {make_facts().sdist_url} sha256:{SDIST_SHA256}",
        "ABI:         cp311 (platform linux_armv7l)",
        "built at:    2026-11-22T10:00:30Z (started 2026-11-22T09:58:25Z, build 1234567)",
        f"build log:   http://127.0.0.1:8080/logs/0001/0234/1234567.txt.gz sha256:{LOG_SHA256}",
        "cross-check: built identically by 2 builders",
    ]


def test_the_summary_says_what_is_not_known(key: Ed25519PrivateKey) -> None:
    facts = make_facts(sdist_url="", sdist_sha256="", builder_key="", log_sha256="")
    lines = summary(verify(sign(statement(facts), key), WHEEL, WHEEL_SHA256, key.public_key()))
    assert "builder:     pi4 in the attic (no key), Debian GNU/Linux 12, Python cp311" in lines
    assert "sdist:       not recorded sha256:not recorded" in lines


def test_url_safe_unpadded_base64_is_read_as_dsse_allows(key: Ed25519PrivateKey) -> None:
    document = json.loads(sign(statement(make_facts()), key))
    payload = base64.b64decode(document["payload"])
    document["payload"] = base64.urlsafe_b64encode(payload).decode()
    sig = base64.b64decode(document["signatures"][0]["sig"])
    document["signatures"][0]["sig"] = base64.urlsafe_b64encode(sig).decode().rstrip("=")
    assert verify(json.dumps(document).encode(), WHEEL, WHEEL_SHA256, key.public_key())


def test_other_wheel_bytes_are_refused(key: Ed25519PrivateKey) -> None:
    tampered = hashlib.sha256(WHEEL_BYTES + b"\0").hexdigest()
    with pytest.raises(ProvenanceError) as failed:
        verify(sign(statement(make_facts()), key), WHEEL, tampered, key.public_key())
    assert str(failed.value) == (
        "the wheel's bytes differ from the ones the farm built "
        f"(its sha256 is {tampered}, the statement's {WHEEL_SHA256})"
    )


def test_a_statement_for_another_wheel_is_refused(key: Ed25519PrivateKey) -> None:
    envelope = sign(statement(make_facts()), key)
    other = "foo-1.0-cp312-cp312-linux_armv7l.whl"
    with pytest.raises(
        ProvenanceError, match=re.escape(f"the statement is about {WHEEL}, not about {other}")
    ):
        verify(envelope, other, WHEEL_SHA256, key.public_key())


def _edit_the_cross_check(payload: dict[str, Any]) -> None:
    payload["predicate"]["runDetails"]["metadata"]["piwheels_crossCheck"] = "checked"


def _point_at_other_bytes(payload: dict[str, Any]) -> None:
    payload["subject"][0]["digest"]["sha256"] = "0" * 64


@pytest.mark.parametrize("change", [_edit_the_cross_check, _point_at_other_bytes])
def test_an_edited_statement_is_refused(key: Ed25519PrivateKey, change: Any) -> None:
    envelope = reencoded(sign(statement(make_facts()), key), change)
    with pytest.raises(ProvenanceError, match="the statement was changed after it was signed"):
        verify(envelope, WHEEL, WHEEL_SHA256, key.public_key())


def test_a_changed_payload_byte_is_refused(key: Ed25519PrivateKey) -> None:
    document = json.loads(sign(statement(make_facts()), key))
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[payload.index(b"cp311")] = ord("C")
    document["payload"] = base64.b64encode(payload).decode()
    with pytest.raises(ProvenanceError, match="the statement was changed after it was signed"):
        verify(json.dumps(document).encode(), WHEEL, WHEEL_SHA256, key.public_key())


def test_a_statement_signed_by_another_key_is_refused(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    envelope = sign(statement(make_facts()), other)
    with pytest.raises(ProvenanceError) as failed:
        verify(envelope, WHEEL, WHEEL_SHA256, key.public_key())
    assert str(failed.value) == (
        f"the statement is not signed by the key {key_id(key.public_key())} "
        f"(but by {key_id(other.public_key())})"
    )
    # one that claims to be by the farm's key
    document = json.loads(envelope)
    document["signatures"][0]["keyid"] = key_id(key.public_key())
    with pytest.raises(ProvenanceError, match="signed by another key than SHA256:"):
        verify(json.dumps(document).encode(), WHEEL, WHEEL_SHA256, key.public_key())


@pytest.mark.parametrize(
    ("envelope", "message"),
    [
        (b"<html>404 Not Found</html>", "it is not JSON"),
        (b"\xff\xfe\x00", "it is not JSON"),
        (b"[" * 100_000, "it is not JSON"),
        (b"[]", "it is not a JSON object"),
        (b'{"payload": "e30="}', "it has no payloadType and payload"),
        (b'{"payloadType": "x", "payload": "e30=", "signatures": {}}', "no list of signatures"),
        (
            b'{"payloadType": "x", "payload": "not base64!", "signatures": []}',
            "its payload is not base64",
        ),
    ],
)
def test_what_is_not_an_envelope_is_refused(
    key: Ed25519PrivateKey, envelope: bytes, message: str
) -> None:
    with pytest.raises(ProvenanceError) as failed:
        verify(envelope, WHEEL, WHEEL_SHA256, key.public_key())
    assert str(failed.value).startswith("the provenance file is not a signed statement")
    assert message in str(failed.value)


def test_an_envelope_of_another_type_is_refused(key: Ed25519PrivateKey) -> None:
    document = json.loads(sign(statement(make_facts()), key))
    document["payloadType"] = "application/json"
    with pytest.raises(ProvenanceError, match="holds 'application/json', not an in-toto"):
        verify(json.dumps(document).encode(), WHEEL, WHEEL_SHA256, key.public_key())


def test_signed_documents_of_other_kinds_are_refused(key: Ed25519PrivateKey) -> None:
    old = statement(make_facts())
    old["_type"] = "https://in-toto.io/Statement/v0.1"
    with pytest.raises(ProvenanceError, match="is not an in-toto statement"):
        verify(sign(old, key), WHEEL, WHEEL_SHA256, key.public_key())
    other = statement(make_facts())
    other["predicateType"] = "https://slsa.dev/provenance/v0.2"
    with pytest.raises(ProvenanceError, match=r"is not SLSA provenance .* but 'https://slsa"):
        verify(sign(other, key), WHEEL, WHEEL_SHA256, key.public_key())
