"""piwheels test package: never installed, since it never builds."""

__version__ = "0+template"
