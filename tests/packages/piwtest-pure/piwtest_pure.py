"""piwheels test package: a pure-Python module."""

__version__ = "0+template"


def greet() -> str:
    return "hello from piwtest-pure"
