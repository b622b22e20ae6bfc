"""From a request's target to a file in the output directory, and never to one outside it.

A target is decoded first and judged after, so that an encoded ``..`` is caught like a plain one;
what a browser never sends and an attacker does (dot segments, NUL, bytes that are not UTF-8) is
a :class:`BadRequest`. A path that exists is followed through its symlinks and refused if it ends
up outside the directory. Redirects are built back from segments with the same quoting.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


class BadRequest(ValueError):
    """A request target that cannot name a file in the output directory (quoted in the message)."""


class Refused(ValueError):
    """A path that would leave the output directory; answered 404 and logged."""


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target, which must be origin-form or absolute-form."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    if not target.startswith("/"):
        raise BadRequest(f"not a path: {target!r}")
    # Not urlsplit: it would read "//host/x" as a network location.
    path, _, query = target.partition("#")[0].partition("?")
    return path, query


def path_segments(path: str) -> tuple[list[str], bool]:
    """The decoded, non-empty segments of *path*, and whether it ends with a slash.

    Refuses what a browser never sends and an attacker does: "." and ".." (also encoded), NUL,
    and bytes that are not UTF-8. Decoding comes first, so "%2e%2e%2f" is caught as "../".
    """
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"path is not UTF-8: {path!r}") from None
    if "\x00" in decoded:
        raise BadRequest(f"NUL in path: {path!r}")
    segments = [segment for segment in decoded.split("/") if segment]
    if any(segment in {".", ".."} for segment in segments):
        raise BadRequest(f"dot segment in path: {path!r}")
    return segments, decoded.endswith("/")


def names_project(segments: list[str], trailing: bool) -> bool:
    """Whether the second segment is a project name (not one of the index root's own files)."""
    if len(segments) < 2 or segments[0] not in {"simple", "project"}:
        return False
    return len(segments) > 2 or trailing or segments[1] not in {"index.html", "index.json"}


def resolve_inside(root: Path, candidate: Path) -> Path | None:
    """*candidate* with symlinks resolved, if it exists; Refused if that is outside *root*."""
    try:
        real = Path(os.path.realpath(candidate, strict=True))
    except (OSError, ValueError):
        return None
    if real != root and not real.is_relative_to(root):
        raise Refused(f"{str(candidate)!r} leads to {str(real)!r}, outside {str(root)!r}")
    return real


def url_path(segments: list[str], trailing: bool) -> str:
    """The URL path naming *segments*, each quoted, as a redirect's Location gives it."""
    path = "/" + "/".join(quote(segment) for segment in segments)
    return path + "/" if trailing and segments else path
