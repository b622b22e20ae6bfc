"""What can go wrong asking the index, one exception for each kind a caller handles differently.

:class:`PyPIUnavailable` (and :class:`StaleResponse`) mean "try again later"; the others mean the
index said something this client cannot use. Each quotes the URL or name concerned, so that one
log line says what failed where, and each survives pickling, so that fetch processes can hand
them to the master.
"""

from __future__ import annotations


class PyPIError(Exception):
    """Anything that went wrong asking the index."""


class PyPIUnavailable(PyPIError):
    """The index could not answer now (network, timeout, 5xx, 429): try again later."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.url} unavailable: {self.reason}"


class StaleResponse(PyPIUnavailable):
    """The answer is older than one already seen (a cache lagging behind): try again later."""

    def __init__(self, url: str, serial: int, expected: int) -> None:
        PyPIError.__init__(self, url, serial, expected)
        self.url = url
        self.serial = serial
        self.expected = expected
        self.reason = f"serial {serial} where {expected} is known"

    def __str__(self) -> str:
        return f"{self.url} is stale: serial {self.serial} where {self.expected} is known"


class ProjectNotFound(PyPIError):
    """The index has no such project (404), or the name could not be a project's."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, url)
        self.name = name
        self.url = url

    def __str__(self) -> str:
        return f"no project {self.name!r} at {self.url}"


class MalformedResponse(PyPIError):
    """The index answered something that is not what the API promises."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"malformed response from {self.url}: {self.problem}"


class UnsupportedIndex(PyPIError):
    """The index does not speak what this client needs (PEP 691 JSON, API version 1)."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(url, problem)
        self.url = url
        self.problem = problem

    def __str__(self) -> str:
        return f"unsupported index at {self.url}: {self.problem}"


def failure_reason(exc: object) -> str:
    """What :class:`PyPIUnavailable` says about a network failure."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def excerpt(value: object, limit: int = 80) -> str:
    """*value* quoted for a message, cut short: what the index sends can be any size."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
