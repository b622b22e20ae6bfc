"""Why a build failed, in the farm's words: a cause from a closed list, what the build lacked,
and what its outcome means for the version (build it again later, wait for something, or give up).

These records are shared by the slave, the master's database layer and the web pages; reading a
log to find the cause is :mod:`piwheels.diagnosis`'s job.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


class Cause(enum.StrEnum):
    """Why a build failed. The list is closed: README and docs/project-json.md document it."""

    MISSING_HEADER = "missing-header"  # a C/C++ header: a Debian -dev package
    MISSING_LIBRARY = "missing-library"  # the linker's -lfoo, or a pkg-config name
    MISSING_TOOL = "missing-tool"  # a program the build runs: a compiler, swig, cmake, cargo
    BUILD_REQUIREMENT = "build-requirement"  # PyPI has no release satisfying a build requirement
    PYTHON_VERSION = "python-version"  # the code is for another Python (print statements ...)
    TIMEOUT = "timeout"  # the slave's build timeout ended it
    OUT_OF_MEMORY = "out-of-memory"
    DISK_FULL = "disk-full"
    NETWORK = "network"  # the build (or pip, for it) could not reach something
    NO_SDIST = "no-sdist"  # the index had no sdist of the version (not yet uploaded?)
    IMPORT_FAILED = "import-failed"  # the build imports a module it does not declare
    SLAVE_LOST = "slave-lost"  # the slave stopped answering mid-build (said by the master)
    UNKNOWN = "unknown"


class Want(NamedTuple):
    """Something a failed build lacked, as its log names it."""

    kind: str  # one of WANT_KINDS
    name: str  # e.g. "portaudio.h", "portaudio" (-lportaudio), "swig", "Cython>=3.3.2"


# header: a file under an include directory; library: lib<name>.so for the linker;
# pkg-config: <name>.pc; tool: a program on $PATH; requirement: a PEP 508 requirement on PyPI;
# module: a Python module the build imported; shared-library: a library's file (libfoo.so.1) the
# built wheel could not load when imported (the publish gate); limit: more memory or disk than
# the builder's own limit allows (slave/limits.py)
WANT_KINDS = (
    "header",
    "library",
    "pkg-config",
    "tool",
    "requirement",
    "module",
    "shared-library",
    "limit",
)


class Diagnosis(NamedTuple):
    """A failed build's cause, the log line that decided it, and what it lacked."""

    cause: Cause
    summary: str  # one line, quoting the log's line
    wants: tuple[Want, ...] = ()
    # The Debian packages that would provide the wants, when the builder knew (its own release's
    # data); each entry is a set of alternatives ("libmariadb-dev | default-libmysqlclient-dev").
    needs: tuple[str, ...] = ()


MAX_WANTS = 8  # per diagnosis: a log listing 200 missing headers names the first few
MAX_ALTERNATIVES = 4  # Debian packages that each provide the same want


class Outcome(enum.StrEnum):
    """What a build attempt's result means for its (version, ABI): migration 0012."""

    BUILT = "built"
    FAILED = "failed"  # final, until an operator retries it
    DEP_WAIT = "dep-wait"  # waits for something that can arrive
    GIVE_BACK = "give-back"  # back to the queue after a delay, a few times


class Explanation(NamedTuple):
    """A cause as the FAQ page and README's table tell it to people."""

    said: str  # what the build's log said
    outcome: str  # what happens next: the outcomes outcome_of gives it, and when


# Every cause, in README's words: the FAQ is made from this, and a test holds it to Cause and to
# outcome_of.
EXPLAINED: dict[Cause, Explanation] = {
    Cause.MISSING_HEADER: Explanation(
        "a C or C++ header is not installed (fatal error: foo.h: No such file or directory)",
        "dep-wait on the Debian package that provides it; failed when none is known",
    ),
    Cause.MISSING_LIBRARY: Explanation(
        "the linker cannot find a library (ld: cannot find -lfoo), or pkg-config found no foo",
        "dep-wait on the Debian package that provides it; failed when none is known",
    ),
    Cause.MISSING_TOOL: Explanation(
        "a program the build runs is not installed (swig, cmake, a Rust compiler)",
        "dep-wait on the Debian package that provides it; failed when none is known",
    ),
    Cause.BUILD_REQUIREMENT: Explanation(
        "no release on PyPI satisfies a build requirement (Cython>=3.3.2)",
        "dep-wait on PyPI; failed when the requirement cannot be read",
    ),
    Cause.PYTHON_VERSION: Explanation(
        "the code is not for this Python (a print statement, distutils on 3.12)", "failed"
    ),
    Cause.TIMEOUT: Explanation("the builder's time limit for a build ended it", "failed"),
    Cause.OUT_OF_MEMORY: Explanation(
        "the build ran out of memory (MemoryError, the compiler killed)",
        "give-back; failed past the builder's own memory limit",
    ),
    Cause.DISK_FULL: Explanation(
        "the builder's disk was full (No space left on device)",
        "give-back; failed past the builder's own disk limit",
    ),
    Cause.NETWORK: Explanation("the build could not reach a host", "give-back"),
    Cause.NO_SDIST: Explanation(
        "the index had no source distribution of the version (still uploading?)", "give-back"
    ),
    Cause.IMPORT_FAILED: Explanation(
        "the build imports a module it does not require (No module named 'numpy'), or the "
        "built wheel cannot load a shared library when imported",
        "failed; dep-wait on the Debian package that provides the shared library, when known",
    ),
    Cause.SLAVE_LOST: Explanation("the builder went silent while it built", "give-back"),
    Cause.UNKNOWN: Explanation(
        "none of the above: the summary quotes the last line the failed step printed", "failed"
    ),
}

# What each outcome means for the version and ABI, in README's words (the FAQ shows these).
OUTCOME_MEANINGS: dict[Outcome, str] = {
    Outcome.BUILT: "the build succeeded: its wheels are in the index",
    Outcome.DEP_WAIT: (
        "waits for something that can arrive. A build requirement is checked whenever a new "
        "release of the project it names is seen on PyPI, and the version is built again as "
        "soon as one satisfies it; a Debian package waits for the farm's operator to install "
        "it on the builders"
    ),
    Outcome.GIVE_BACK: (
        "goes back to the queue after a delay, which doubles before each next try, and counts "
        "as failed after a few tries; until then the farm's figures do not count it as a failure"
    ),
    Outcome.FAILED: "final, until the farm's operator retries it (say, after installing what "
    "the build lacked on the builders)",
}


# Causes that pass: another try, later or on another builder, can succeed. A timeout is not
# among them: trying again costs the whole timeout, and nearly always ends the same way.
TRANSIENT = frozenset(
    {Cause.SLAVE_LOST, Cause.NETWORK, Cause.DISK_FULL, Cause.NO_SDIST, Cause.OUT_OF_MEMORY}
)
# What a Debian package provides, and so what an operator can install on the builders
DEBIAN_KINDS = frozenset({"header", "library", "pkg-config", "tool", "shared-library"})
_DEBIAN_CAUSES = (
    Cause.MISSING_HEADER,
    Cause.MISSING_LIBRARY,
    Cause.MISSING_TOOL,
    Cause.IMPORT_FAILED,  # a shared library the built wheel needs at run time
)


def outcome_of(diagnosis: Diagnosis) -> tuple[Outcome, str | None]:
    """What to do with a failed build: its outcome, and for a dep-wait on PyPI the project
    (canonical name) whose next release may satisfy the build requirement."""
    if diagnosis.cause in TRANSIENT:
        if any(want.kind == "limit" for want in diagnosis.wants):
            # past the builder's own limit (slave/limits.py): builders like it would stop it
            # the same way; an operator who raises the limits retries the cause
            return Outcome.FAILED, None
        return Outcome.GIVE_BACK, None
    if diagnosis.cause is Cause.BUILD_REQUIREMENT:
        for want in diagnosis.wants:
            requirement = requirement_of(want.name)
            if requirement is not None:
                return Outcome.DEP_WAIT, canonicalize_name(requirement.name)
    elif diagnosis.cause in _DEBIAN_CAUSES and diagnosis.needs:
        return Outcome.DEP_WAIT, None  # on the Debian packages an operator can install
    return Outcome.FAILED, None


def parse_wants(texts: list[str]) -> tuple[Want, ...]:
    """Wants as the database keeps them ("kind:name")."""
    return tuple(Want(*text.split(":", 1)) for text in texts if ":" in text)


def requirements_met(wants: tuple[Want, ...], project: str, releases: list[str]) -> bool:
    """Whether one of *releases* (versions of *project*) satisfies each requirement on it among
    *wants*, by PEP 440 as pip reads it (pre-releases only when the specifier names one)."""
    requirements = [
        r
        for w in wants
        if w.kind == "requirement"
        if (r := requirement_of(w.name)) is not None and canonicalize_name(r.name) == project
    ]
    if not requirements:
        return False
    versions = _valid(releases)
    return all(any(True for _ in r.specifier.filter(versions)) for r in requirements)


def _valid(versions: list[str]) -> list[Version]:
    valid = []
    for version in versions:
        try:
            valid.append(Version(version))
        except InvalidVersion:
            continue
    return valid


def requirement_of(text: str) -> Requirement | None:
    """*text* as a PEP 508 requirement, or None when it is not one."""
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None
