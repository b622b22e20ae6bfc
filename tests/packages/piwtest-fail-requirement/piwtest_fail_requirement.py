"""piwheels test package: builds only with piwtest-helper 2 or later."""

__version__ = "0+template"
