"""piwheels test package: a module that only imports on Python 3.11 and later."""

import tomllib

__version__ = "0+template"


def parse(text: str) -> dict:
    return tomllib.loads(text)
