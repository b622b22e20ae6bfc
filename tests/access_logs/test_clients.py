"""Who asked, from the User-Agent headers real pip and uv sent (captured.py) and from hostile
ones: the JSON part is the client's to write, so nothing in it may break or bloat a reading."""

from __future__ import annotations

import json
import sys

import pytest

from access_logs.captured import FIREFOX, PIP_23_2_1, PIP_26_3, UV_0_13_9
from piwheels.access_logs.clients import MAX_FIELD, NO_CLIENT, Client, parse_user_agent


def only(installer: str | None, version: str | None) -> Client:
    return Client(installer, version, None, None, None, None, None, None, None, None)


def debian_x86_64(installer: str, version: str, python: str) -> Client:
    return Client(
        installer=installer,
        installer_version=version,
        implementation="CPython",
        implementation_version=python,
        python=python,
        os="Linux",
        os_version="6.18.44-fc-v1300",
        distro="Debian GNU/Linux",
        distro_version="12",
        cpu="x86_64",
    )


@pytest.mark.parametrize(
    ("agent", "client"),
    [
        (PIP_26_3, debian_x86_64("pip", "26.3", "3.11.7")),
        (PIP_23_2_1, debian_x86_64("pip", "23.2.1", "3.11.7")),
        (UV_0_13_9, debian_x86_64("uv", "0.13.9", "3.11.2")),
    ],
    ids=["pip 26.3", "pip 23.2.1", "uv 0.13.9"],
)
def test_real_installers_say_who_they_are(agent: str, client: Client) -> None:
    assert parse_user_agent(agent) == client


@pytest.mark.parametrize(
    ("agent", "client"),
    [
        (FIREFOX, only("mozilla", "5.0")),
        ("curl/7.88.1", only("curl", "7.88.1")),
        ("Wget/1.21.3", only("wget", "1.21.3")),
        ("pip/26.3", only("pip", "26.3")),  # an installer's name, without its JSON
        ("pip", only("pip", None)),
        ("tab\there", only("tab", None)),
        ("  padded/1  ", only("padded", "1")),
        ("", NO_CLIENT),
        ("   ", NO_CLIENT),
        (None, NO_CLIENT),
    ],
)
def test_other_agents_give_their_product_token(agent: str | None, client: Client) -> None:
    assert parse_user_agent(agent) == client


def with_json(document: str) -> str:
    return f"pip/24.0 {document}"


@pytest.mark.parametrize(
    "document",
    [
        "",
        "{not json",
        '{"python": "3.11.2"',  # cut short
        '["python", "3.11.2"]',
        '"python"',
        "null",
        "{'python': '3.11.2'}",  # Python, not JSON
        '(X11; Linux x86_64) {"python": "3.11.2"}',  # JSON, but not where pip puts it
    ],
)
def test_an_agent_whose_json_is_not_an_object_gives_only_the_installer(document: str) -> None:
    assert parse_user_agent(with_json(document)) == only("pip", "24.0")


def test_fields_of_the_wrong_type_or_missing_are_none() -> None:
    document = {
        "implementation": "CPython",  # should be an object
        "python": 3.11,
        "system": None,
        "distro": {"name": ["Debian"], "version": {"major": 12}},
        "cpu": True,
    }
    assert parse_user_agent(with_json(json.dumps(document))) == only("pip", "24.0")
    assert parse_user_agent(with_json("{}")) == only("pip", "24.0")


def test_deep_nesting_is_no_json() -> None:
    document = '{"cpu": "armv7l", "x": ' + "[" * 10_000 + "]" * 10_000 + "}"
    with pytest.raises(RecursionError):
        json.loads(document)  # what a plain decoder does with it
    assert parse_user_agent(with_json(document)) == only("pip", "24.0")


def test_a_huge_integer_costs_nothing_and_spoils_nothing_else() -> None:
    digits = "9" * (sys.get_int_max_str_digits() * 10)
    document = f'{{"python": {digits}, "cpu": "armv7l"}}'
    with pytest.raises(ValueError, match="digits"):
        json.loads(document)  # what a plain decoder does with it
    client = parse_user_agent(with_json(document))
    assert (client.python, client.cpu) == (None, "armv7l")


def test_strings_are_cleaned_of_control_characters_and_cut() -> None:
    document = {
        "cpu": "arm\x00v7l\x1b[31m\x7f\x9b",
        "python": "3" * 10_000,
        "implementation": {"name": "\ud800PyPy", "version": "\x00\x01"},
        "distro": {"name": "Raspbian GNU/Linux\n", "version": "\u200b12"},
    }
    client = parse_user_agent(with_json(json.dumps(document)))
    assert client.cpu == "armv7l[31m"
    assert client.python == "3" * MAX_FIELD
    assert client.implementation == "\ufffdPyPy"  # a lone surrogate cannot be stored as UTF-8
    assert client.implementation_version is None  # nothing left
    assert client.distro == "Raspbian GNU/Linux"
    assert client.distro_version == "\u200b12"  # not a control character


def test_the_product_token_is_cleaned_and_cut_too() -> None:
    client = parse_user_agent("A" * 1_000 + "\x00/" + "1" * 1_000)
    assert client == only("a" * MAX_FIELD, "1" * MAX_FIELD)


def test_a_nul_in_the_json_text_is_no_json() -> None:
    # JSON forbids raw control characters in strings
    assert parse_user_agent(with_json('{"cpu": "arm\x00v7l"}')) == only("pip", "24.0")


def test_the_installer_is_named_by_the_prefix_not_the_json() -> None:
    document = json.dumps({"installer": {"name": "uv", "version": "0.5"}, "cpu": "aarch64"})
    client = parse_user_agent(with_json(document))
    assert (client.installer, client.installer_version, client.cpu) == ("pip", "24.0", "aarch64")
