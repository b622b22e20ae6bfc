"""Who made a request, read from its User-Agent header.

pip and uv say a great deal: ``pip/24.0 {"installer": ..., "python": "3.11.2", ...}``, a JSON
object after the product token (the "linehaul" agent PyPI's statistics are built from). Other
agents give only their product token. The header is the client's to write, so every field is
checked for its type, cleaned of control characters and cut short before anything keeps it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

MAX_FIELD = 100  # characters kept of any one field

# Control characters (C0, DEL, C1) go; lone surrogates, which JSON's \ud800 escapes can make and
# UTF-8 cannot carry, become U+FFFD.
_CLEAN: dict[int, int | None] = {
    **dict.fromkeys((*range(0x20), *range(0x7F, 0xA0))),
    **dict.fromkeys(range(0xD800, 0xE000), 0xFFFD),
}


def _number(digits: str) -> None:
    """No field kept is a number, so digits are not converted: int() of thousands of digits is
    slow and past 4,300 refuses the whole document."""


_DECODER = json.JSONDecoder(parse_int=_number)


@dataclass(frozen=True, slots=True)
class Client:
    installer: str | None  # "pip", "uv", or another agent's product token lowercased
    installer_version: str | None
    implementation: str | None  # "CPython", "PyPy"
    implementation_version: str | None
    python: str | None
    os: str | None  # "Linux"
    os_version: str | None  # the kernel's release
    distro: str | None  # "Debian GNU/Linux", "Raspbian GNU/Linux"
    distro_version: str | None
    cpu: str | None  # "x86_64", "armv7l", "aarch64"


NO_CLIENT = Client(None, None, None, None, None, None, None, None, None, None)


def clean(value: object) -> str | None:
    """*value* if it is a string with something in it once control characters are removed,
    cut to MAX_FIELD characters; None otherwise.

    >>> clean("  armv7l\\x00"), clean(7), clean("\\x1b")
    ('  armv7l', None, None)
    """
    if not isinstance(value, str):
        return None
    if not value.isprintable():
        value = value.translate(_CLEAN)
    return value[:MAX_FIELD] or None


def _member(document: dict[str, Any], *keys: str) -> str | None:
    """The string at *keys* in nested objects, or None where any step is missing or not one."""
    value: Any = document
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return clean(value)


def _linehaul(text: str) -> dict[str, Any] | None:
    """The JSON object at the start of *text*, or None."""
    if not text.startswith("{"):
        return None
    try:
        document, _ = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        # RecursionError: deep nesting ([[[[...) exhausts the decoder's stack
        return None
    return document if isinstance(document, dict) else None


def parse_user_agent(agent: str | None) -> Client:
    """The client that sent User-Agent *agent* (None: no header).

    >>> parse_user_agent("curl/7.88.1").installer
    'curl'
    """
    if agent is None:
        return NO_CLIENT
    return _cached_parse(agent) if len(agent) <= CACHED else _parse(agent)


def _parse(agent: str) -> Client:
    words = agent.split(maxsplit=1)
    if not words:
        return NO_CLIENT
    name, _, version = words[0].partition("/")
    installer = clean(name.lower())
    installer_version = clean(version)
    document = _linehaul(words[1]) if len(words) == 2 else None
    if document is None:
        return Client(installer, installer_version, None, None, None, None, None, None, None, None)
    return Client(
        installer=installer,
        installer_version=installer_version,
        implementation=_member(document, "implementation", "name"),
        implementation_version=_member(document, "implementation", "version"),
        python=_member(document, "python"),
        os=_member(document, "system", "name"),
        os_version=_member(document, "system", "release"),
        distro=_member(document, "distro", "name"),
        distro_version=_member(document, "distro", "version"),
        cpu=_member(document, "cpu"),
    )


# pip and uv send one agent per version and platform, so a busy day repeats a few thousand.
# Only agents of a sensible length are kept, so that hostile ones cannot fill memory.
CACHED = 2048  # characters
_cached_parse = functools.lru_cache(maxsize=4096)(_parse)
