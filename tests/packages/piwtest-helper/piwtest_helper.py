"""piwheels test package: used while building piwtest-fail-requirement."""

__version__ = "0+template"


def banner(project: str) -> str:
    """The line piwtest-fail-requirement prints while it builds."""
    return f"{project}: built with piwtest-helper {__version__}"
