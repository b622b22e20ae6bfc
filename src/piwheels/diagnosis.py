"""Why a build failed: a cause from a closed list, read from the build's log.

Users of a build farm ask one question of a failed build more than any other: what would make it
build? The answer is nearly always in one line of pip's output (a missing header, a library the
linker could not find, a build requirement PyPI has no release of yet), buried in hundreds of
others. :func:`classify` finds that line and names the cause, so that the farm can say it, wait
for what is missing (dep-wait), or try again later when the cause passes (give-back).

It reads only the log, so it works the same on the master (for slaves that do not classify their
own builds, such as the original piwheels slave) and on a slave, which can then also say which of
its Debian packages would provide what is missing (see :mod:`piwheels.slave.debian`). The words
it answers in are :mod:`piwheels.failures`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from packaging.utils import canonicalize_name

from piwheels.failures import (
    DEBIAN_KINDS,
    MAX_ALTERNATIVES,
    MAX_WANTS,
    Cause,
    Diagnosis,
    Want,
    requirement_of,
)

# Of a log, only so much is read: the decisive line is nearly always near the end, and a log can
# be 16 MB of compiler warnings.
HEAD_CHARS = 256 * 1024
TAIL_CHARS = 1024 * 1024
MAX_SUMMARY = 300  # characters


_DEBIAN_NAME = r"[a-z0-9][a-z0-9+.-]{0,99}"
_DEBIAN_ALTERNATIVES = re.compile(
    rf"{_DEBIAN_NAME}(?: \| {_DEBIAN_NAME}){{0,{MAX_ALTERNATIVES - 1}}}"
)


def diagnose(output: str, package: str, version: str, reported: Diagnosis | None) -> Diagnosis:
    """The master's diagnosis of a failed build: its own reading of the log, with the Debian
    packages the slave *reported* for what the build lacked when the slave read the log the
    same way (a slave knows its own release's packages; its cause is never taken on trust)."""
    ours = classify(output, package, version)
    if reported is not None and reported.cause == ours.cause and _same_wants(reported, ours):
        needs = tuple(
            n for n in reported.needs[:MAX_WANTS] if _DEBIAN_ALTERNATIVES.fullmatch(str(n))
        )
        summary = str(reported.summary)
        if not (summary.isprintable() and len(summary) <= 2 * MAX_SUMMARY):
            summary = ours.summary
        return ours._replace(summary=summary, needs=needs)
    if any(w.kind in DEBIAN_KINDS for w in ours.wants):
        note = "the builder did not say which Debian package provides it"
        return ours._replace(summary=f"{ours.summary}; {note}")
    return ours


def _same_wants(reported: Diagnosis, ours: Diagnosis) -> bool:
    try:
        return tuple(Want(*w) for w in reported.wants) == ours.wants
    except TypeError:
        return False


class _Hit(NamedTuple):
    line: str
    wants: tuple[Want, ...]


# A rule: (cause, the pattern of a deciding line, what it wants from the match). Lines are
# stripped of leading whitespace and of pip's "│ " and "║ " margins first.
_Rule = tuple[Cause, re.Pattern[str], Callable[[re.Match[str]], tuple[Want, ...]]]


def _nothing(_: re.Match[str]) -> tuple[Want, ...]:
    return ()


def _want(kind: str, group: str = "what") -> Callable[[re.Match[str]], tuple[Want, ...]]:
    def take(match: re.Match[str]) -> tuple[Want, ...]:
        return (Want(kind, match.group(group)),)

    return take


def _limit(kind: str) -> Callable[[re.Match[str]], tuple[Want, ...]]:
    return lambda _: (Want("limit", kind),)


def over_limit(kind: str, limit: int) -> str:
    """How the slave says a build went past its own *kind* limit (memory or disk) of *limit*
    bytes: the words the rules above read."""
    return f"it exceeded its {kind} limit of {limit >> 20} MB"


def _m(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.MULTILINE)


_NO_SPACE = _m(r"^.*\b(?:No space left on device|Disk quota exceeded)\b.*$")


def ran_out_of_space(output: str) -> bool:
    """Whether a build's log says a write failed for want of space (whose space: the caller
    knows)."""
    return _NO_SPACE.search(output) is not None


# In the order causes are decided: the first cause with a line in the log wins. Causes of the
# builder's state (timeout, disk, memory, network) come first, since they make later steps fail
# in ways that look like other causes (a download that failed leaves a requirement unsatisfied;
# a full disk breaks a compiler). Within a cause, the earliest line wins.
_RULES: list[_Rule] = [
    (Cause.TIMEOUT, _m(r"^\[piwheels\] pip was killed: it exceeded its timeout.*$"), _nothing),
    (
        # the publish gate (slave/gate.py): the build succeeded, its wheel does not import
        Cause.IMPORT_FAILED,
        _m(
            r"^\[piwheels\] publish gate: import [\w.]+(?: failed: .*?(?P<what>[\w.+-]+\.so"
            r"[\w.]*): cannot open shared object file|: crashed the interpreter).*$"
        ),
        lambda m: (Want("shared-library", m.group("what")),) if m.group("what") else (),
    ),
    # past the builder's own limits (the slave says so with over_limit): what the build lacked
    # is a bigger limit, not a better moment
    (Cause.DISK_FULL, _m(r"^.*it exceeded its disk limit of \d+ MB.*$"), _limit("disk")),
    (Cause.DISK_FULL, _NO_SPACE, _nothing),
    (Cause.OUT_OF_MEMORY, _m(r"^.*it exceeded its memory limit of \d+ MB.*$"), _limit("memory")),
    (
        Cause.OUT_OF_MEMORY,
        _m(
            r"^(?:.*\bMemoryError\b.*|.*virtual memory exhausted.*|.*Cannot allocate memory.*"
            r"|.*fatal error: Killed signal terminated program.*|.*[Oo]ut of memory\b.*)$"
        ),
        _nothing,
    ),
    (
        # maturin without cargo asks for puccinialin, which downloads a Rust compiler: the log
        # then ends in a network error (or, offline, an unsatisfied requirement), but the cause
        # is the compiler the builder lacks
        Cause.MISSING_TOOL,
        _m(
            r"^.*(?:Rust not found, installing into a temporary directory"
            r"|(?:the requirement|distribution found for) puccinialin\b).*$"
        ),
        lambda _: (Want("tool", "cargo"),),
    ),
    (
        Cause.NETWORK,
        # pip's "WARNING: Retrying ..." lines name the same errors, and may have succeeded later
        _m(
            r"^(?!WARNING: Retrying).*(?:Temporary failure in name resolution"
            r"|Name or service not known|Network is unreachable|No route to host"
            r"|Failed to establish a new connection|Could not resolve host"
            r"|urlopen error|Connection reset by peer|Read timed out|Could not fetch URL"
            r"|Connection timed out).*$"
        ),
        _nothing,
    ),
    (
        # pip says so only when it found nothing to install: not a build requirement to wait for
        Cause.PYTHON_VERSION,
        _m(
            r"^(?:.*Ignored the following versions that require a different python version.*"
            r"|.*requires a different Python:.*)$"
        ),
        _nothing,
    ),
    (
        # no-sdist instead when the requirement is the package being built (see classify)
        Cause.BUILD_REQUIREMENT,
        _m(
            r"^(?:ERROR: )?(?:Could not find a version that satisfies the requirement"
            r"|No matching distribution found for) (?P<what>\S+).*$"
        ),
        _want("requirement"),
    ),
    (
        Cause.MISSING_HEADER,
        _m(
            r"^.*fatal error: (?:'(?P<quoted>[^'\s]+)' file not found"
            r"|(?P<what>[^\s:]+\.(?:h|hh|hpp|hxx|H)): No such file or directory).*$"
        ),
        lambda m: (Want("header", m.group("what") or m.group("quoted")),),
    ),
    (
        Cause.MISSING_LIBRARY,
        _m(r"^.*\bld(?:\.\w+)?: cannot find -l(?P<what>[\w.+-]+).*$"),
        _want("library"),
    ),
    (
        # pkg-config's own words; a setup.py trying names in turn (mysqlclient's); meson's
        # dependency(), which asks pkg-config first (pycairo's)
        Cause.MISSING_LIBRARY,
        _m(
            r"^.*(?:Package '?(?P<a>[\w.+-]+?)'?,? (?:required by '[^']*', )?"
            r"was not found in the pkg-config search path"
            r"|No package '(?P<b>[\w.+-]+)' found"
            r"|Command 'pkg-config --exists (?P<c>[\w.+-]+)' returned non-zero exit status"
            r"|Run-time dependency (?P<d>[\w.+-]+) found: NO).*$"
        ),
        lambda m: (Want("pkg-config", next(m.group(g) for g in "abcd" if m.group(g))),),
    ),
    (
        Cause.MISSING_TOOL,
        _m(
            r"^.*(?:command '(?P<a>[^'\s]+)' failed: No such file or directory"
            r"|unable to execute '(?P<b>[^'\s]+)': No such file or directory"
            r"|(?:/bin/sh|sh|bash): (?:\d+: )?(?:line \d+: )?(?P<c>[\w.+-]+): "
            r"(?:command )?not found"
            r"|FileNotFoundError: \[Errno 2\] No such file or directory: '(?P<d>[\w+-]+)'"
            r"|can't find (?P<rust>Rust) compiler"
            r"|(?P<cmake>CMake) must be installed).*$"
        ),
        lambda m: (Want("tool", _tool_name(m)),),
    ),
    (
        # code for Python 2, or for a Python that still had what this one removed; after the
        # causes above, since a compiler's or a tool's failure can print a traceback too
        Cause.PYTHON_VERSION,
        _m(
            r"^(?:SyntaxError: .*"
            r"|.*No module named '(?:distutils|imp|asynchat|asyncore|smtpd)'.*"
            r"|.*cannot import name '\w+' from 'collections'.*)$"
        ),
        _nothing,
    ),
    (
        Cause.IMPORT_FAILED,
        _m(r"^.*(?:ModuleNotFoundError|ImportError): No module named '?(?P<what>[\w.]+)'?.*$"),
        lambda m: (Want("module", m.group("what").split(".")[0]),),
    ),
]


def _tool_name(match: re.Match[str]) -> str:
    if match.group("rust"):
        return "cargo"  # setuptools-rust and maturin run cargo, which brings rustc
    if match.group("cmake"):
        return "cmake"
    name = next(match.group(g) for g in "abcd" if match.group(g))
    return name.rsplit("/", 1)[-1]


_MARGIN = re.compile(r"^[ \t│║|]*", re.MULTILINE)


def classify(output: str, package: str, version: str) -> Diagnosis:
    """The cause of the failed build of *package* *version* whose log is *output*."""
    text = _readable(output)
    for cause, pattern, wants_of in _RULES:
        hit = _first(pattern, text, wants_of)
        if hit is None:
            continue
        if cause is Cause.BUILD_REQUIREMENT:
            if _names(hit.wants, package):  # pip found no file of the version to build
                hit = hit._replace(wants=())
                return _diagnosis(Cause.NO_SDIST, hit, f"no sdist of {package} {version}")
            wants = tuple(w for w in hit.wants if requirement_of(w.name) is not None)
            return _diagnosis(cause, hit._replace(wants=wants), _lacking(cause, wants))
        return _diagnosis(cause, hit, _lacking(cause, hit.wants))
    return Diagnosis(Cause.UNKNOWN, _first_error(text) or "no line of the log says why")


def _readable(output: str) -> str:
    if len(output) > HEAD_CHARS + TAIL_CHARS:
        output = f"{output[:HEAD_CHARS]}\n{output[-TAIL_CHARS:]}"
    return _MARGIN.sub("", output.replace("\r", "\n"))


def _first(
    pattern: re.Pattern[str], text: str, wants_of: Callable[[re.Match[str]], tuple[Want, ...]]
) -> _Hit | None:
    wants: list[Want] = []
    first_line = None
    for match in pattern.finditer(text):
        if first_line is None:
            first_line = match.group(0)
        for want in wants_of(match):
            if want not in wants and len(wants) < MAX_WANTS:
                wants.append(want)
    if first_line is None:
        return None
    return _Hit(first_line, tuple(wants))


def _names(wants: tuple[Want, ...], package: str) -> bool:
    """Whether a requirement among *wants* is for *package* itself."""
    for want in wants:
        requirement = requirement_of(want.name)
        if requirement is not None and canonicalize_name(requirement.name) == canonicalize_name(
            package
        ):
            return True
    return False


def _lacking(cause: Cause, wants: tuple[Want, ...]) -> str:
    names = ", ".join(w.name for w in wants)
    if not names:
        return {
            Cause.TIMEOUT: "the build ran out of time",
            Cause.DISK_FULL: "the builder's disk was full",
            Cause.OUT_OF_MEMORY: "the build ran out of memory",
            Cause.NETWORK: "the build could not reach the network",
            Cause.PYTHON_VERSION: "the code is not for this Python",
            Cause.IMPORT_FAILED: "importing the built wheel crashed the interpreter",
        }.get(cause, str(cause))
    return {
        Cause.MISSING_HEADER: f"missing header {names}",
        Cause.MISSING_LIBRARY: f"missing library {names}",
        Cause.MISSING_TOOL: f"missing program {names}",
        Cause.BUILD_REQUIREMENT: f"no release on PyPI satisfies {names}",
        Cause.DISK_FULL: f"the build went past the builder's {names} limit",
        Cause.OUT_OF_MEMORY: f"the build went past the builder's {names} limit",
        Cause.IMPORT_FAILED: (
            f"the built wheel cannot load {names} when imported"
            if any(w.kind == "shared-library" for w in wants)
            else f"the build imports {names}, which it does not require"
        ),
    }.get(cause, f"{cause}: {names}")


def _diagnosis(cause: Cause, hit: _Hit, lacking: str) -> Diagnosis:
    return Diagnosis(cause, summary_line(lacking, hit.line), hit.wants)


def summary_line(lacking: str, line: str) -> str:
    """*lacking*, quoting *line*, on one line of at most MAX_SUMMARY characters."""
    quoted = " ".join(line.split())
    room = MAX_SUMMARY - len(lacking) - 4
    if len(quoted) > room:
        quoted = quoted[: max(room - 1, 0)] + "…"
    return f'{lacking}: "{quoted}"'


_END_OF_OUTPUT = _m(r"^\[end of output\]$")
_ERROR_LINE = _m(r"^(?:ERROR: |error: |\w*Error: |fatal: ).*$")
# pip's own lines around a failed subprocess: they say that it failed, never why
_PIP_SAYS = ("error: subprocess-exited-with-error", "ERROR: Failed", "ERROR: Could not build")


def _first_error(text: str) -> str | None:
    """An unknown cause still quotes a line: the last the failed step printed (pip frames a
    subprocess's output, ending it with "[end of output]"), or the log's first error line."""
    end = _END_OF_OUTPUT.search(text)
    if end is not None:
        for line in reversed(text[: end.start()].splitlines()[-50:]):
            if line.strip() and not line.startswith(("\u2570", "\u00d7")):  # pip's frame
                return summary_line("unknown cause", line)
    for match in _ERROR_LINE.finditer(text):
        line = match.group(0)
        if not line.startswith(_PIP_SAYS):
            return summary_line("unknown cause", line)
    return None
