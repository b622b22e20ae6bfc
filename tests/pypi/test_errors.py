"""piwheels.pypi.errors: each error survives pickling and quotes what it concerns."""

from __future__ import annotations

import pickle

from piwheels.pypi.errors import (
    MalformedResponse,
    ProjectNotFound,
    PyPIUnavailable,
    StaleResponse,
    UnsupportedIndex,
)


def test_errors_pickle_and_quote_input() -> None:
    errors = [
        PyPIUnavailable("https://x/simple/", "HTTP 503"),
        StaleResponse("https://x/simple/", 1, 2),
        ProjectNotFound("Foo", "https://x/pypi/foo/json"),
        MalformedResponse("https://x/pypi/foo/json", "bad JSON"),
        UnsupportedIndex("https://x/simple/", "HTML only"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert "https://x/" in str(error)
